"""Distributions made at test time, so tests exercise real entry-point discovery.

A module plus a `.dist-info` folder (METADATA and entry_points.txt) in a folder on `sys.path`
is all `importlib.metadata`, and so the plugin host, needs to find a plugin: no `pip install`,
no build. Use it to test what users will meet: a hook plugin, a driver chosen by name, a
plugin installed while the process runs, a worker process that finds a plugin on its path.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["DistributionSite", "distribution_site"]


class DistributionSite:
    """A folder where `install()` puts distributions (put it on `sys.path`, or on the
    `PYTHONPATH` of a subprocess)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: the modules installed so far (forgotten from `sys.modules` when a fixture ends)
        self.modules: list[str] = []

    def install(
        self,
        name: str,
        entry_points: Mapping[str, Mapping[str, str]],
        modules: Mapping[str, str] | None = None,
        *,
        version: str = "1.0.0",
        requires: str = "penguiflow>=4.0,<5",
    ) -> None:
        """Install distribution `name` with `entry_points` (group -> {name: "module:attr"})
        and `modules` (module name -> source, dedented)."""
        for module, source in (modules or {}).items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            self.modules.append(module)
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + (f"Requires-Dist: {requires}\n" if requires else ""),
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


def distribution_site(tmp_path: Path, monkeypatch: Any) -> Iterator[DistributionSite]:
    """A `DistributionSite` on `sys.path` for one test (pytest's `tmp_path` and `monkeypatch`);
    the kernel's pytest plugin offers it as the `penguiflow_site` fixture."""
    root = tmp_path / "penguiflow-site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    site = DistributionSite(root)
    yield site
    for module in site.modules:  # the next test's modules of the same name start fresh
        sys.modules.pop(module, None)
