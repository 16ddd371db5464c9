"""Tests run against a real PostgreSQL server (scripts/services/postgres.sh start)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "PENGUIFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5439/penguiflow_test"
)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not _reachable(POSTGRES_URL):
        message = (
            f"no PostgreSQL at {POSTGRES_URL}; start one with "
            "`bash scripts/services/postgres.sh start` or set PENGUIFLOW_POSTGRES_URL"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_URL
