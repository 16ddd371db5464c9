"""Shared helpers: a fresh registry per test, and reading a sample from it."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def sample(registry: Any, name: str, **labels: str) -> float | None:
    """The value of one sample (`name` as exposed: `_total`, `_count`, `_sum`...)."""
    value = registry.get_sample_value(name, labels)
    return None if value is None else float(value)
