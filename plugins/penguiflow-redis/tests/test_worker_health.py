"""`penguiflow worker --health-port` against a real Redis of the test's own: readiness follows
Redis going away and coming back, `penguiflow health` says so with its exit code, and the
worker's `--log-format json` lines are JSON."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workers import HERE, RedisServer, WorkerProcesses


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def health_url(log: Path) -> str:
    match = re.search(r"penguiflow worker health: (http://\S+)", log.read_text())
    assert match is not None, log.read_text()
    return match.group(1)


def until(condition: Callable[[], Any], what: str, within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def get(url: str) -> tuple[int, dict[str, Any]]:
    """GET `url` (urllib: the redis env installs no HTTP client); any status comes back."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: direct
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    return get(f"{url}/readyz")


def health(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "penguiflow.cli", "health", url, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_readiness_follows_redis_and_the_worker(own_redis: RedisServer, tmp_path: Path) -> None:
    workers = WorkerProcesses(own_redis.url, tmp_path)
    try:
        proc = workers.start("--health-port", "0", "--log-format", "json", "--log-level", "info")
        log: Path = proc.log_path  # type: ignore[attr-defined]
        url = health_url(log)
        assert url.startswith("http://127.0.0.1:")

        status, body = readyz(url)
        assert status == 200 and body["status"] == "ready", body
        assert list(body["checks"]) == ["plugins", "redis", "worker"]
        assert body["checks"]["redis"]["detail"] == f"{own_redis.url} answers"
        assert body["checks"]["worker"]["detail"].startswith("consuming nodes work, finish")
        assert get(f"{url}/healthz") == (200, {"status": "ok"})
        ok = health(url)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith(f"ready: {url}/readyz answered 200")

        own_redis.stop()
        status, body = until(lambda: (r := readyz(url))[0] == 503 and r, "readiness to fail")
        assert body["checks"]["redis"]["status"] == "failed"
        assert body["checks"]["worker"]["status"] == "ok"  # the loop retries: still alive
        assert get(f"{url}/healthz")[0] == 200
        down = health(url)
        assert down.returncode == 1
        assert "failed  redis" in down.stdout

        own_redis.start()
        until(lambda: readyz(url)[0] == 200, "readiness to come back")

        workers.stop_all()
        assert proc.returncode == 0, log.read_text()
        gone = health(url)
        assert gone.returncode == 2
        assert gone.stderr.startswith(f"penguiflow health: cannot reach {url}/readyz")
    finally:
        workers.stop_all()
    # Every line the worker logged is a JSON object; the outage warning among them.
    records = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if not line.startswith("penguiflow worker")  # the command's own status lines
    ]
    assert any(
        r["logger"] == "penguiflow_redis.worker" and r["level"] == "WARNING" for r in records
    ), records


def test_a_taken_health_port_is_a_usage_error(own_redis: RedisServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "penguiflow.cli",
                "worker",
                "distributed_app:build",
                "--runtime",
                own_redis.url,
                "--health-port",
                str(port),
            ],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"cannot serve health on 127.0.0.1:{port}" in result.stderr
    assert "choose another --health-port" in result.stderr
