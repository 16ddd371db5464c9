from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from penguiflow_mcp import MCPServerConfig

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


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, what: str, timeout_s: float = 30.0
) -> None:
    """Return once `proc` accepts connections on 127.0.0.1:`port`; a process that exits
    first, or does not listen in time (it is killed then), raises naming `what` and what it
    wrote on stderr (when piped)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"{what} exited at start: {said}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling the port, with a deadline
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:g} s")


def _spawn(port: int, token: str, name: str, mode: str = "") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "servers" / "calc_http.py"), str(port), token, name, mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_listening(proc, port, "the MCP test server calc_http.py", timeout_s=20)
    return proc


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


# -- the reference "everything" server (npm), over stdio and streamable HTTP -------------------

REPO = HERE.parents[2]
EVERYTHING_SCRIPT = REPO / "scripts" / "services" / "mcp-everything.sh"


@dataclass(frozen=True)
class EverythingServer:
    """How to run @modelcontextprotocol/server-everything (see scripts/services/)."""

    entry: str
    preload: str

    def stdio_config(self, **options: object) -> MCPServerConfig:
        return MCPServerConfig(
            name="everything", command="node", args=[self.entry, "stdio"], **options
        )


@pytest.fixture(scope="session")
def everything_server() -> EverythingServer:
    """The installed server (Node.js from Debian's packages and the npm package are installed
    on first use by the script; later runs reuse them)."""

    def script(action: str) -> str:
        done = subprocess.run(
            ["bash", str(EVERYTHING_SCRIPT), action],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"{EVERYTHING_SCRIPT} {action} failed:\n{done.stderr}")
        return done.stdout.strip()

    return EverythingServer(entry=script("install"), preload=script("preload"))


@dataclass
class EverythingHTTP:
    """One everything server over streamable HTTP on 127.0.0.1 (restartable on its port)."""

    server: EverythingServer
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def config(self, **options: object) -> MCPServerConfig:
        return MCPServerConfig(name="everything", url=self.url, **options)

    def start(self) -> None:
        env = {**os.environ, "PORT": str(self.port)}
        self.proc = subprocess.Popen(
            ["node", "--require", self.server.preload, self.server.entry, "streamableHttp"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_listening(self.proc, self.port, "the everything server")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def everything_http(everything_server: EverythingServer) -> Iterator[EverythingHTTP]:
    server = EverythingHTTP(everything_server, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["stdio", "http"])
def everything(
    request: pytest.FixtureRequest, everything_server: EverythingServer
) -> Iterator[Callable[..., MCPServerConfig]]:
    """A factory of configs for the everything server, once over stdio and once over
    streamable HTTP: `everything(timeout_s=5)` gives an `MCPServerConfig`."""
    if request.param == "stdio":
        yield everything_server.stdio_config
        return
    server = EverythingHTTP(everything_server, free_port())
    server.start()
    try:
        yield server.config
    finally:
        server.stop()
