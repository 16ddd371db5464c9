"""pytest plugin shipped with the kernel (entry point `pytest11`: `penguiflow`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["penguiflow_isolated_plugins"]


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
