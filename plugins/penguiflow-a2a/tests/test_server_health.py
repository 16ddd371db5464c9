"""The A2A server's `/healthz` and `/readyz` (unauthenticated, the state store's real state),
and `penguiflow a2a serve --log-format json` in a real process, checked by `penguiflow health`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
from penguiflow_a2a.server import BearerTokenAuthenticator, create_a2a_app
from server_support import card_for, serve, shout_flow

from penguiflow.health import HealthCheckFailed
from penguiflow.state.sqlite import SQLiteStateStore

HERE = Path(__file__).parent
TOKEN = "a2a-secret-token-1"


async def test_readiness_reflects_the_state_store_without_credentials(tmp_path: Path) -> None:
    store = SQLiteStateStore(f"sqlite:///{tmp_path / 'tasks.db'}")
    apps = []

    def build(url: str) -> object:
        app = create_a2a_app(
            shout_flow(),
            agent_card=card_for(url),
            authenticator=BearerTokenAuthenticator({TOKEN: "acme"}),
            state_store=store,
        )
        apps.append(app)
        return app

    try:
        async with (
            serve(build) as url,
            httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client,
        ):
            # Probes carry no token; the agent's own routes still want one.
            assert (await client.post("/message:send", json={})).status_code == 401
            alive = await client.get("/healthz")
            assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["status"] == "ready"
            assert list(body["checks"]) == ["plugins", "state_store"]
            assert body["checks"]["state_store"]["detail"] == "SQLiteStateStore writable"
            assert ready.headers["cache-control"] == "no-store"
            assert (await client.head("/readyz")).status_code == 200

            # Checks of the application's own go through app.state.health.
            async def upstream() -> str:
                raise HealthCheckFailed("the upstream model server is down")

            apps[0].state.health.add("upstream", upstream)
            await store.aclose()
            down = await client.get("/readyz")
            assert down.status_code == 503
            checks = down.json()["checks"]
            assert checks["state_store"]["status"] == "failed"
            assert checks["state_store"]["detail"].startswith("StoreClosedError")
            assert checks["upstream"]["detail"] == "the upstream model server is down"
            assert TOKEN not in down.text
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await store.aclose()


async def health(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "penguiflow.cli",
        "health",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_a2a_serve_logs_json_and_answers_probes() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from penguiflow.cli import main; main()",
        "a2a",
        "serve",
        "a2a_serve_targets:build_flow",
        "--port",
        "0",
        "--log-level",
        "info",
        "--log-format",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(HERE),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line.startswith("penguiflow a2a serve: serving "), line
        url = line.rsplit(" ", 1)[1].strip()
        code, text = await health(url)
        assert code == 0, text
        assert text.startswith(f"ready: {url}/readyz answered 200")
        assert "ok  state_store" not in text  # served without a store: nothing to check
    finally:
        process.send_signal(signal.SIGTERM)
        stderr = (await asyncio.wait_for(process.stderr.read(), 30)).decode()
        assert await asyncio.wait_for(process.wait(), 30) == 0, stderr
    records = [
        json.loads(line)
        for line in stderr.splitlines()
        if line and not line.startswith("penguiflow a2a serve")  # the command's status lines
    ]
    # uvicorn's records come out in our format: its start-up line and the probe's access line.
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, records
    assert any("/readyz" in r["message"] for r in records if r["logger"] == "uvicorn.access")
