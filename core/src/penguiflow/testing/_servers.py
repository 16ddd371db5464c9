"""Tests that need a real server: use it when it answers, say how to start it when not."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

from ..resources import redact_url

__all__ = ["require_server"]


def require_server(url: str, *, default_port: int, how_to_start: str) -> str:
    """Return `url` when its host and port accept a connection.

    Otherwise skip the test with `how_to_start` — or fail it when `CI` is set, because in CI a
    missing server is a broken setup, not an optional extra."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or default_port)
    try:
        with socket.create_connection(address, timeout=1):
            return url
    except OSError:
        message = f"no server at {redact_url(url)}; {how_to_start}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
