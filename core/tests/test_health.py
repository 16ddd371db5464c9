"""penguiflow.health: checks and reports, the built-in checks, the asyncio health server over
real loopback HTTP, and `penguiflow health URL` as a real process against it."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow.errors import ConfigurationError, PenguiFlowError
from penguiflow.health import (
    HEALTH_KEY,
    HealthCheckFailed,
    HealthChecks,
    HealthServer,
    SupportsHealthChecks,
    default_checks,
    plugins_check,
    serve_health,
    state_store_check,
)
from penguiflow.plugins import PluginRecord, PluginSettings, load_hooks, reset_hooks
from penguiflow.state import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore


async def ok() -> str:
    return "fine"


async def silent() -> None:
    return None


async def broken() -> str:
    raise ConnectionError("redis://app:s3cret@db:6379/0 refused the connection")


async def hangs() -> str:
    await asyncio.Event().wait()
    return "never"


# -- the model ---------------------------------------------------------------------------------


async def test_a_report_is_ready_only_when_every_check_passes() -> None:
    checks = HealthChecks()
    checks.add("a", ok)
    checks.add("b", silent)
    report = await checks.run()
    assert report.ready and report.status_code == 200
    body = report.to_dict()
    assert body["status"] == "ready"
    assert list(body["checks"]) == ["a", "b"]  # the order they were added in
    assert body["checks"]["a"]["status"] == "ok" and body["checks"]["a"]["detail"] == "fine"
    assert body["checks"]["b"]["detail"] == "ok"
    assert body["checks"]["a"]["duration_ms"] >= 0

    checks.add("c", broken)
    report = await checks.run()
    assert not report.ready and report.status_code == 503
    failed = report.to_dict()["checks"]["c"]
    assert failed["status"] == "failed"
    # The type says what kind of failure; the password in the quoted URL is masked.
    assert failed["detail"].startswith("ConnectionError: redis://app:***@db:6379/0")
    assert "s3cret" not in json.dumps(report.to_dict())


async def test_a_check_that_hangs_fails_at_its_time_limit() -> None:
    checks = HealthChecks(timeout_s=5)
    checks.add("slow", hangs, timeout_s=0.05)
    checks.add("fast", ok)
    report = await checks.run()
    slow, fast = report.checks
    assert not slow.ok and slow.detail == "no answer within 0.05s"
    assert fast.ok


async def test_health_check_failed_gives_its_message_alone() -> None:
    async def starting() -> str:
        raise HealthCheckFailed("starting: waiting for the runtime's server")

    checks = HealthChecks()
    checks.add("worker", starting)
    (result,) = (await checks.run()).checks
    assert result.detail == "starting: waiting for the runtime's server"
    assert issubclass(HealthCheckFailed, PenguiFlowError)


async def test_a_long_failure_is_cut() -> None:
    async def verbose() -> str:
        raise RuntimeError("x" * 1000)

    checks = HealthChecks()
    checks.add("v", verbose)
    (result,) = (await checks.run()).checks
    assert len(result.detail) == 300 and result.detail.endswith("...")


def test_bad_registrations_say_what_to_fix() -> None:
    checks = HealthChecks()
    checks.add("a", ok)
    with pytest.raises(ConfigurationError, match="'a' is already registered"):
        checks.add("a", ok)
    with pytest.raises(ConfigurationError, match="non-empty name"):
        checks.add("", ok)
    with pytest.raises(ConfigurationError, match="async function of no arguments"):
        checks.add("b", "not a function")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="positive"):
        checks.add("c", ok, timeout_s=0)
    with pytest.raises(ConfigurationError, match="positive"):
        HealthChecks(timeout_s=-1)
    checks.remove("a")
    checks.remove("a")  # nothing there: nothing happens
    assert checks.names() == []


# -- built-in checks ---------------------------------------------------------------------------


async def test_state_store_check_writes_and_reads_back() -> None:
    store = InMemoryStateStore()
    assert await state_store_check(store)() == "InMemoryStateStore writable"
    assert await store.load_memory_state(HEALTH_KEY) is not None


async def test_state_store_check_on_sqlite_fails_once_the_store_is_closed(tmp_path: Path) -> None:
    store = SQLiteStateStore(f"sqlite:///{tmp_path / 'flows.db'}")
    check = state_store_check(store)
    try:
        assert await check() == "SQLiteStateStore writable"
    finally:
        await store.aclose()
    checks = HealthChecks()
    checks.add("state_store", check)
    (result,) = (await checks.run()).checks
    assert not result.ok and result.detail.startswith("StoreClosedError")


async def test_state_store_check_reads_when_it_cannot_write() -> None:
    class ReadOnly:
        def __init__(self) -> None:
            self.asked: list[str] = []

        async def list_tasks(self, session_id: str) -> list[dict[str, Any]]:
            self.asked.append(session_id)
            return []

    store = ReadOnly()
    detail = await state_store_check(store)()
    assert detail == "ReadOnly reachable (read probe: it has no memory_state to write to)"
    assert store.asked == [HEALTH_KEY]
    assert "not checked" in (await state_store_check(object())())


async def test_plugins_check_names_failed_plugins_and_raising_hooks() -> None:
    class Fine:
        pass

    host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})), extra=[Fine()])
    reset_hooks(host)
    try:
        assert (await plugins_check()()).endswith("hook plugin(s) loaded")
        # What loading records for an entry point that failed to import, and for a hook
        # implementation that raised when called.
        host.records.append(
            PluginRecord(
                name="exporter",
                group="penguiflow",
                kind="hooks",
                distribution="acme-exporter",
                version="1.0",
                value="acme_exporter:plugin",
                status="failed",
                error="ImportError: token=abc123 rejected",
            )
        )
        host.hook_failures.add(("acme", "penguiflow_event_sinks"))
        checks = HealthChecks()
        checks.add("plugins", plugins_check())
        (result,) = (await checks.run()).checks
    finally:
        reset_hooks(None)
    assert not result.ok
    assert "failed to load: exporter" in result.detail
    assert "hooks that raised: acme.penguiflow_event_sinks" in result.detail
    assert "penguiflow plugins check" in result.detail
    assert "abc123" not in result.detail  # errors are left to the operator's own command


async def test_plugins_check_without_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PENGUIFLOW_PLUGINS_AUTOLOAD", "0")
    reset_hooks(None)
    assert await plugins_check()() == "no hook plugins loaded"


async def test_default_checks_and_the_driver_protocol() -> None:
    assert default_checks().names() == ["plugins"]
    assert default_checks(state_store=InMemoryStateStore()).names() == ["plugins", "state_store"]

    class Driver:
        def health_checks(self) -> dict[str, Any]:
            return {"redis": ok}

    assert isinstance(Driver(), SupportsHealthChecks)
    assert not isinstance(object(), SupportsHealthChecks)


# -- the HTTP server ---------------------------------------------------------------------------


@pytest.fixture
async def flipping() -> AsyncIterator[tuple[HealthServer, dict[str, bool]]]:
    state = {"up": True}

    async def dependency() -> str:
        if not state["up"]:
            raise HealthCheckFailed("the dependency is down")
        return "up"

    checks = HealthChecks()
    checks.add("dependency", dependency)
    async with await serve_health(checks) as server:
        yield server, state


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await reader.read()  # the server closes after answering
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], Any]:
    status, headers, body = await request(
        port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    return status, headers, json.loads(body) if body else None


async def test_the_server_answers_liveness_and_readiness(
    flipping: tuple[HealthServer, dict[str, bool]],
) -> None:
    server, state = flipping
    assert server.url == f"http://127.0.0.1:{server.port}"
    status, headers, body = await get(server.port, "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    status, _, body = await get(server.port, "/readyz?verbose=1")
    assert status == 200 and body["status"] == "ready"
    assert body["checks"]["dependency"]["detail"] == "up"

    state["up"] = False
    status, _, body = await get(server.port, "/readyz")
    assert status == 503 and body["status"] == "not_ready"
    assert body["checks"]["dependency"] == {
        "status": "failed",
        "detail": "the dependency is down",
        "duration_ms": body["checks"]["dependency"]["duration_ms"],
    }
    # Liveness does not depend on the dependencies: restarting would not bring them back.
    assert (await get(server.port, "/healthz"))[0] == 200


async def test_the_server_refuses_what_it_does_not_serve(
    flipping: tuple[HealthServer, dict[str, bool]],
) -> None:
    server, _ = flipping
    status, _, body = await get(server.port, "/metrics")
    assert status == 404 and "try /healthz or /readyz" in body["error"]
    status, headers, body = await get(server.port, "/readyz", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, headers, raw = await request(server.port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert status == 200 and raw == b"" and int(headers["Content-Length"]) > 0
    status, _, _ = await request(server.port, b"garbage\r\n\r\n")
    assert status == 400
    status, _, _ = await request(server.port, b"GET /" + b"x" * 20000 + b" HTTP/1.1\r\n\r\n")
    assert status == 400


async def test_the_server_closes_idempotently_and_starts_once() -> None:
    server = HealthServer(HealthChecks())
    with pytest.raises(PenguiFlowError, match="await start"):
        _ = server.port
    await server.start("127.0.0.1", 0)
    port = server.port
    await server.aclose()
    await server.aclose()
    with pytest.raises(PenguiFlowError, match="starts once"):
        await server.start()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


# -- penguiflow health URL ---------------------------------------------------------------------


async def health_command(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "penguiflow.cli",
        "health",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_health_command_exit_codes(
    flipping: tuple[HealthServer, dict[str, bool]],
) -> None:
    server, state = flipping
    code, out, _ = await health_command(server.url)
    assert code == 0
    assert out.splitlines() == [
        f"ready: {server.url}/readyz answered 200",
        "  ok  dependency  up",
    ]
    # host:port is read as http; a URL with a path is asked as given.
    code, out, _ = await health_command(f"127.0.0.1:{server.port}/healthz")
    assert code == 0 and out.startswith(f"ready: {server.url}/healthz answered 200")

    state["up"] = False
    code, out, _ = await health_command(server.url)
    assert code == 1
    assert out.splitlines() == [
        f"not ready: {server.url}/readyz answered 503",
        "  failed  dependency  the dependency is down",
    ]
    code, out, _ = await health_command(server.url, "--json")
    assert code == 1 and json.loads(out)["status"] == "not_ready"

    code, out, _ = await health_command(f"{server.url}/nothing-here")
    assert code == 1 and "404" in out and "try /healthz or /readyz" in out


async def test_health_command_when_nothing_answers() -> None:
    server = await serve_health(HealthChecks())
    url = server.url
    await server.aclose()  # the port is free now: nothing listens there
    code, out, err = await health_command(url, "--timeout", "2")
    assert code == 2 and out == ""
    assert err.startswith(f"penguiflow health: cannot reach {url}/readyz: ")
    code, _, err = await health_command("ftp://example.org")
    assert code == 2 and "is not an http(s) URL" in err
