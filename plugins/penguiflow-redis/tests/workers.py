"""Worker processes and throwaway Redis servers for the runtime tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class WorkerProcesses:
    """Starts `penguiflow worker distributed_app:build` processes; kills leftovers at the end."""

    def __init__(self, url: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.log_dir = log_dir
        self.env = {**os.environ, **(env or {})}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, *extra: str, url: str | None = None, target: str = "distributed_app:build"
    ) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"worker-{len(self.procs)}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "penguiflow.cli",
                "worker",
                target,
                "--runtime",
                url or self.url,
                *extra,
            ],
            cwd=HERE,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        handle.close()
        proc.log_path = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if b"penguiflow worker ready" in log.read_bytes():
                return proc
            if proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"worker not ready after 30 s:\n{log.read_text()}")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own, on 127.0.0.1, with an append-only file in `folder`."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run scripts/services/redis.sh start")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
