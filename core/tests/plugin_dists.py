"""Real distributions made at test time: a module plus a `.dist-info` folder (METADATA and
entry_points.txt) in a temporary folder put on sys.path, which is all importlib.metadata
(and so the plugin host) needs to find entry points."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest


class Site:
    """A folder on sys.path where `install()` puts distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def install(
        self,
        name: str,
        entry_points: Mapping[str, Mapping[str, str]],
        modules: Mapping[str, str] | None = None,
        *,
        version: str = "1.0.0",
    ) -> None:
        for module, source in (modules or {}).items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            self.modules.append(module)
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Requires-Dist: penguiflow>=4.0,<5\n",
            encoding="utf-8",
        )
        sections = [
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items())
            for group, points in entry_points.items()
        ]
        (info / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
        # The import system caches directory listings and may not notice files written
        # within one timestamp tick of its last look.
        importlib.invalidate_caches()


def site_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """For a test module's fixture: `yield from site_on_path(tmp_path, monkeypatch)`."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    made = Site(root)
    yield made
    for module in made.modules:  # the next test's modules of the same name start fresh
        sys.modules.pop(module, None)
