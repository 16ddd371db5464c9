"""`penguiflow dev` as a user runs it: a real process serving on loopback, and the bad inputs
it must refuse with a message naming what was wrong and the fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).parent


def _penguiflow() -> list[str]:
    return [sys.executable, "-c", "from penguiflow.cli import main; main()"]


def _run(*args: str, cwd: Path = HERE, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [*_penguiflow(), "dev", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_serves_the_page_and_api_then_stops_on_sigint(tmp_path: Path) -> None:
    store = tmp_path / "state" / "pg.db"
    process = subprocess.Popen(
        [
            *_penguiflow(),
            "dev",
            "playground_agents:build_planner",
            "--port",
            "0",
            "--state-store",
            f"sqlite:///{store}",
        ],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("penguiflow dev: serving planner playground_agents:build_planner")
        url = first.rsplit(" at ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        assert process.stdout.readline().strip() == f"open {url}/"
        with httpx.Client(base_url=url, timeout=30) as client:
            assert "PenguiFlow playground" in client.get("/").text
            assert client.get("/api/info").json()["kind"] == "planner"
            assert client.get("/readyz").status_code == 200
        assert store.exists()  # the default kind of store: a SQLite file, its folder made
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "penguiflow dev stopped" in err


def test_token_is_printed_in_the_url_and_required() -> None:
    process = subprocess.Popen(
        [
            *_penguiflow(),
            "dev",
            "playground_agents:build_flow",
            "--port",
            "0",
            "--state-store",
            "memory://",
            "--token",
            "tok-12345",
        ],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" at ", 1)[1].strip()
        assert process.stdout.readline().strip() == f"open {url}/?token=tok-12345"
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/api/info").status_code == 401
            info = client.get("/api/info", headers={"Authorization": "Bearer tok-12345"})
            assert info.json()["kind"] == "flow"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope_module:build"], "cannot import 'nope_module': run from the folder"),
        (["playground_agents:nope"], "module 'playground_agents' has no attribute 'nope'"),
        (
            ["playground_agents:broken"],
            "building 'playground_agents:broken' failed: RuntimeError: the database password",
        ),
        (["playground_agents:not_an_agent"], "must be (or return) a ReactPlanner or a flow"),
        (["playground_agents"], "TARGET must read 'module:attribute'"),
        (
            ["playground_agents:build_planner", "--token", "short"],
            "every bearer token must be a string of at least 8 characters",
        ),
        (
            ["playground_agents:build_planner", "--state-store", "sqlite:////dev/null/x/pg.db"],
            "cannot open the state store 'sqlite:////dev/null/x/pg.db'",
        ),
        (
            ["playground_agents:build_planner", "--state-store", "bogus://x"],
            "no state store for scheme 'bogus'",
        ),
        (
            ["playground_agents:build_planner", "--host", "0.0.0.0"],
            "--host 0.0.0.0 lets other machines reach the playground",
        ),
    ],
)
def test_bad_input_exits_non_zero_with_the_fix(args: list[str], message: str) -> None:
    extra = [] if "--state-store" in args else ["--state-store", "memory://"]
    result = _run(*args, "--port", "0", *extra, env={"PENGUIFLOW_PLAYGROUND_TOKEN": ""})
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
