"""A real MLflow tracking server (SQLite backend) for the tests that export to MLflow; the
`mlflow_url` fixture in conftest.py starts one per test session.

Needs mlflow (tox -e otel-mlflow installs it): without it the tests that use the server are
skipped, unless PENGUIFLOW_OTEL_MLFLOW=1 says they must run (CI)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["REQUIRED", "require_mlflow", "serve_mlflow"]

REQUIRED = os.environ.get("PENGUIFLOW_OTEL_MLFLOW") == "1"


def require_mlflow() -> Any:
    """The `mlflow` module; skips the test without it (fails it when REQUIRED)."""
    try:
        import mlflow
    except ImportError:
        if REQUIRED:
            raise
        pytest.skip("mlflow is not installed (tox -e otel-mlflow installs it)")
    return mlflow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_mlflow(folder: Path) -> Iterator[str]:
    """Run `mlflow server` on 127.0.0.1 with its database and artifacts in `folder`; yields its
    URL once it answers /health, and stops it afterwards."""
    require_mlflow()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240  # a cold start takes a minute on a busy machine
        while True:
            if server.poll() is not None:
                raise AssertionError(
                    f"mlflow server exited: {Path(folder / 'server.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("mlflow server did not answer /health in 240 s")
            time.sleep(0.5)  # polling a starting process: the deadline above bounds it
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()
