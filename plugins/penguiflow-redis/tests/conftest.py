"""Tests run against a real redis-server (scripts/services/redis.sh start)."""

from __future__ import annotations

import os

import pytest

from penguiflow.testing import require_server


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_server(
        os.environ.get("PENGUIFLOW_REDIS_URL", "redis://127.0.0.1:6390/0"),
        default_port=6379,
        how_to_start="start one with `bash scripts/services/redis.sh start` "
        "or set PENGUIFLOW_REDIS_URL",
    )
