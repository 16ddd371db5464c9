"""Plugins and contrib packages build on the kernel's public names only.

A plugin that imports `penguiflow._x` or `penguiflow.<pkg>._x` breaks whenever the kernel
reorganises its internals, and shows third-party authors the wrong way to do it. When this
test fails, make the name public in the kernel (with a test and docs) and import it from
there.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "penguiflow"


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _private_kernel_path(dotted: str) -> bool:
    """`penguiflow._x`, `penguiflow.state._logs`...: a kernel path with a private part."""
    parts = dotted.split(".")
    return parts[0] == KERNEL and any(_is_private(p) for p in parts[1:])


def private_imports(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, imported path) for every import of a private kernel module or name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _private_kernel_path(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from penguiflow.state import _logs` reaches a private module (or name) too.
            paths = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            private = [p for p in paths if _private_kernel_path(p)]
            if private:
                found.append((node.lineno, private[0]))
        elif isinstance(node, ast.Call) and _imported_by_call(node):
            found.append((node.lineno, _imported_by_call(node)))
    return found


def _imported_by_call(call: ast.Call) -> str:
    """The private kernel path in `importlib.import_module("...")`, else `""`."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name != "import_module" or not call.args:
        return ""
    target = call.args[0]
    if isinstance(target, ast.Constant) and isinstance(target.value, str):
        return target.value if _private_kernel_path(target.value) else ""
    return ""


def package_sources() -> list[Path]:
    return sorted(
        path
        for pattern in ("plugins/*/src/**/*.py", "contrib/*/src/**/*.py")
        for path in ROOT.glob(pattern)
    )


def test_plugins_and_contrib_import_only_public_kernel_names() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: imports private kernel module {name}; "
        "import a public name instead (make it public in the kernel if it has none)"
        for path in package_sources()
        for line, name in private_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not problems, "\n".join(problems)


def test_the_scan_covers_every_package() -> None:
    scanned = {path.relative_to(ROOT).parts[:2] for path in package_sources()}
    expected = {
        tuple(p.relative_to(ROOT).parts)
        for pattern in ("plugins/*", "contrib/*")
        for p in ROOT.glob(pattern)
        if (p / "src").is_dir()
    }
    assert expected and scanned == expected
    assert ROOT / "plugins/penguiflow-redis/src/penguiflow_redis/store.py" in package_sources()


def test_the_scan_finds_every_form_of_private_import() -> None:
    source = "\n".join(
        [
            "from penguiflow.state._logs import SessionLogs",  # 1: what the stores used to do
            "import penguiflow._flow",  # 2
            "import penguiflow.llm._errors as errors",  # 3
            "from penguiflow import _builtin_drivers",  # 4
            "from penguiflow.state import StoredEvent, _models",  # 5
            "importlib.import_module('penguiflow._worker')",  # 6
            "if TYPE_CHECKING:",
            "    from penguiflow._graph import Graph",  # 8
        ]
    )
    assert [line for line, _ in private_imports(source)] == [1, 2, 3, 4, 5, 6, 8]
    assert private_imports(source)[0] == (1, "penguiflow.state._logs")


def test_public_and_own_private_imports_pass() -> None:
    source = "\n".join(
        [
            "from penguiflow.state import SessionLogs, StoredEvent",
            "from penguiflow import __version__",
            "import penguiflow.testing",
            "from penguiflow_redis._codec import encode",  # a plugin's own private module
            "import penguiflow_planner._planner",
            "from ._client import Client",
            "from . import _context",
            "importlib.import_module('penguiflow.state.sqlite')",
        ]
    )
    assert private_imports(source) == []
