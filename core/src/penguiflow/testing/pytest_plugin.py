"""pytest plugin shipped with the kernel (entry point `pytest11`: `penguiflow`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._sites import DistributionSite

__all__ = ["penguiflow_isolated_plugins", "penguiflow_site"]


@pytest.fixture
def penguiflow_isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No hook plugin autoload and no plugin environment settings during the test."""
    from penguiflow.plugins import AUTOLOAD_ENV, DISABLE_ENV, STRICT_ENV, reset_hooks

    monkeypatch.setenv(AUTOLOAD_ENV, "0")
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    monkeypatch.delenv(STRICT_ENV, raising=False)
    reset_hooks()
    yield
    reset_hooks()


@pytest.fixture
def penguiflow_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistributionSite]:
    """A folder on `sys.path` where `site.install(name, entry_points, modules)` makes real
    distributions for the test (see `penguiflow.testing.DistributionSite`)."""
    from ._sites import distribution_site

    yield from distribution_site(tmp_path, monkeypatch)
