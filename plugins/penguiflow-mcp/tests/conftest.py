from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HTTPServer:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    port: int
    name: str
    mode: str = ""

    def start(self) -> None:
        self.proc = _spawn(self.port, self.token, self.name, self.mode)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _spawn(port: int, token: str, name: str, mode: str = "") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "servers" / "calc_http.py"), str(port), token, name, mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"MCP test server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("MCP test server did not start within 20 s")


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    port = free_port()
    server = HTTPServer(
        url=f"http://127.0.0.1:{port}/mcp", token="s3cret-token", proc=None, port=port, name="calc"
    )  # type: ignore[arg-type]
    server.start()
    yield server
    server.stop()


@pytest.fixture
def time_server_command() -> str:
    command = Path(sys.executable).parent / "mcp-server-time"
    if not command.exists():
        pytest.fail(
            "mcp-server-time is not installed in this environment (pip install mcp-server-time)"
        )
    return str(command)
