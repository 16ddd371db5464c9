"""The socket `penguiflow serve-session` listens on."""

from __future__ import annotations

import socket

import click
import pytest
from penguiflow_sessions.server._command import _bind


def test_the_listening_socket_disables_nagle() -> None:
    # Regression: uvicorn sets TCP_NODELAY only on sockets it binds itself, so on ours every
    # small response waited about 40 ms for the client's delayed ACK.
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_a_port_in_use_is_a_usage_error() -> None:
    taken = _bind("127.0.0.1", 0)
    taken.listen()
    try:
        with pytest.raises(click.UsageError, match=r"cannot bind 127\.0\.0\.1:"):
            _bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
