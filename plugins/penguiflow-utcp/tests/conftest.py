"""The UTCP manual app (a real HTTP server on 127.0.0.1), shared by the test modules."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_manual_app() -> Iterator[str]:
    """Run the manual app on a free port until the generator is closed."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "servers" / "manual_app.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the UTCP manual app did not start")
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/utcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def manual_url() -> Iterator[str]:
    yield from serve_manual_app()


@pytest.fixture(scope="session")
def other_manual_url() -> Iterator[str]:
    """A second app, on another port: a host a manual of the first may point its tools at."""
    yield from serve_manual_app()
