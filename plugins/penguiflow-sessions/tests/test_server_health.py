"""The session server's `/healthz` and `/readyz` (unauthenticated, the state store's real
state), and `penguiflow serve-session --log-format json` in a real process, checked by
`penguiflow health`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from _server_support import TOKENS, serving
from penguiflow_sessions.manager import SessionManager
from penguiflow_sessions.server import BearerTokenAuthenticator, create_app
from test_serve_command import _APP, TESTS, _env, _serve_argv

from penguiflow.health import HealthCheckFailed
from penguiflow.state.sqlite import SQLiteStateStore


async def test_readiness_reflects_the_sessions_store_without_credentials(tmp_path: Path) -> None:
    store = SQLiteStateStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    manager = SessionManager(state_store=store)
    app = create_app(authenticator=BearerTokenAuthenticator(TOKENS), manager=manager)
    try:
        async with (
            serving(app) as url,
            httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client,
        ):
            assert (await client.get("/sessions/s/tasks")).status_code == 401
            alive = await client.get("/healthz")
            assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            checks = ready.json()["checks"]
            assert list(checks) == ["plugins", "state_store"]
            # The kernel store under the sessions' adapter is the one probed (and writable).
            assert checks["state_store"]["detail"] == "SQLiteStateStore writable"

            async def search_index() -> str:
                raise HealthCheckFailed("the search index is rebuilding")

            app.state.health.add("search_index", search_index)
            await store.aclose()
            down = await client.get("/readyz")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "not_ready"
            assert body["checks"]["state_store"]["detail"].startswith("StoreClosedError")
            assert body["checks"]["search_index"]["detail"] == "the search index is rebuilding"
            assert not any(token in down.text for token in TOKENS)
    finally:
        await manager.aclose()
        await store.aclose()


async def test_without_a_shared_store_there_is_nothing_to_probe() -> None:
    app = create_app(authenticator=BearerTokenAuthenticator(TOKENS))
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client,
    ):
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and list(ready.json()["checks"]) == ["plugins"]


async def test_serve_session_logs_json_and_answers_probes(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(_APP)
    process = subprocess.Popen(
        _serve_argv(
            "myapp:build_planner", "--port", "0", "--log-level", "info", "--log-format", "json"
        ),
        cwd=tmp_path,
        env=_env(tmp_path, TESTS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert first.startswith("penguiflow serve-session: serving http://127.0.0.1:"), first
        base = first.rsplit(" ", 1)[1].strip()
        probe = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "penguiflow.cli",
            "health",
            base,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(probe.communicate(), 60)
        assert probe.returncode == 0, out.decode() + err.decode()
        assert out.decode().startswith(f"ready: {base}/readyz answered 200")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    records = [
        json.loads(line)
        for line in stderr.splitlines()
        if line and not line.startswith("penguiflow serve-session")  # the status lines
    ]
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, records
    assert any("/readyz" in r["message"] for r in records if r["logger"] == "uvicorn.access")
