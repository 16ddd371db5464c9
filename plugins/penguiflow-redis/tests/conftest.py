"""Tests run against a real redis-server (scripts/services/redis.sh start)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("PENGUIFLOW_REDIS_URL", "redis://127.0.0.1:6390/0")


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable(REDIS_URL):
        message = (
            f"no Redis at {REDIS_URL}; start one with `bash scripts/services/redis.sh start` "
            "or set PENGUIFLOW_REDIS_URL"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL
