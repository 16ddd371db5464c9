"""Docs checks: relative links resolve, and every public name is documented in docs/.

Run from the repository root: `python scripts/check_docs.py`. Exit status 1 lists what is wrong.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Modules whose every `__all__` name must appear in docs/.
PUBLIC_MODULES = (
    "penguiflow",
    "penguiflow.runtime",
    "penguiflow.joins",
    "penguiflow.current",
    "penguiflow.observability",
    "penguiflow.tracecontext",
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files() -> list[Path]:
    return sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")])


def broken_links(files: Iterable[Path]) -> list[str]:
    problems = []
    for path in files:
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            resolved = (path.parent / target.split("#", 1)[0]).resolve()
            if not resolved.exists():
                problems.append(f"{path.relative_to(ROOT)}: broken link {target}")
    return problems


def documented_text() -> str:
    """All docs text, for checks that a name is documented somewhere in docs/."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")))


def undocumented(names: Iterable[str], text: str) -> list[str]:
    return sorted(name for name in names if not re.search(rf"\b{re.escape(name)}\b", text))


def main() -> int:
    problems = broken_links(markdown_files())
    public = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        public += [name for name in module.__all__ if not name.startswith("__")]
    problems += [
        f"docs/: public name `{n}` is not documented"
        for n in undocumented(public, documented_text())
    ]
    hookspecs = importlib.import_module("penguiflow.hookspecs")
    hooks = [name for name in vars(hookspecs) if name.startswith("penguiflow_")]
    plugins_page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    problems += [
        f"docs/plugins.md: hook `{n}` is not documented" for n in undocumented(hooks, plugins_page)
    ]
    for problem in problems:
        print(problem)
    print(f"check_docs: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
