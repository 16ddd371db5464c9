"""penguiflow-serve's health routes and logging setup, in a real server process: readiness
follows its check, and every line on stderr (uvicorn's included) is JSON."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from penguiflow_serve import LOG_FORMATS, LOG_LEVELS, configure_logging

from penguiflow.errors import ConfigurationError
from penguiflow.logging import StructuredFormatter
from penguiflow.tracecontext import SpanContext, using_span

SERVER = """
import asyncio, os, sys
from starlette.applications import Starlette
from penguiflow.health import HealthCheckFailed, HealthChecks
from penguiflow_serve import bind_socket, configure_logging, display_url, health_routes, serve_app

async def maintenance():
    if os.path.exists(sys.argv[1]):
        raise HealthCheckFailed("in maintenance")
    return "serving"

async def main():
    configure_logging("info", "json")
    checks = HealthChecks()
    checks.add("maintenance", maintenance)
    sock = bind_socket("127.0.0.1", 0)
    print(display_url("127.0.0.1", sock.getsockname()[1]), flush=True)
    await serve_app(Starlette(routes=health_routes(checks)), sock, log_level="info")

asyncio.run(main())
"""


def get(url: str) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, timeout=5, trust_env=False)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_health_routes_and_json_logs_in_a_server_process(tmp_path: Path) -> None:
    marker = tmp_path / "maintenance"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        alive = get(f"{url}/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
        ready = get(f"{url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["maintenance"]["detail"] == "serving"
        marker.touch()
        down = get(f"{url}/readyz")
        assert down.status_code == 503
        assert down.json() == {
            "status": "not_ready",
            "checks": {
                "maintenance": {
                    "status": "failed",
                    "detail": "in maintenance",
                    "duration_ms": down.json()["checks"]["maintenance"]["duration_ms"],
                }
            },
        }
        assert down.headers["cache-control"] == "no-store"
        assert get(f"{url}/metrics").status_code == 404
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines() if line]
    access = [r["message"] for r in records if r["logger"] == "uvicorn.access"]
    assert any("/readyz" in line and "503" in line for line in access), records
    assert any(r["logger"] == "uvicorn.error" for r in records)


def test_configure_logging_covers_every_logger_with_trace_ids() -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    try:
        configure_logging("INFO", "json", stream=stream)
        with using_span(SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")):
            logging.getLogger("penguiflow_a2a.server").info("task started")
        configure_logging("warning", "TEXT", stream=stream)
        assert root.level == logging.WARNING
        assert not isinstance(root.handlers[0].formatter, StructuredFormatter)
        with pytest.raises(ConfigurationError, match="not one of text, json"):
            configure_logging("info", "yaml")
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    line: dict[str, Any] = json.loads(stream.getvalue().splitlines()[0])
    assert line["logger"] == "penguiflow_a2a.server" and line["span_id"] == "00f067aa0ba902b7"
    assert LOG_FORMATS == ("text", "json")
    assert LOG_LEVELS == ("debug", "info", "warning", "error")
