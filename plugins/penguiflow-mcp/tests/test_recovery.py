"""Recovery against real server processes: an HTTP server restarted on the same port while
the connector is idle, and a stdio server killed in the middle of a call."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HERE, HTTPServer, free_port
from penguiflow_mcp import MCPConnectionError, MCPConnector, MCPServerConfig

from penguiflow.testing import run_async


@pytest.fixture(params=["legacy", "legacy,answers-400"], ids=["404", "400"])
def restartable(request: pytest.FixtureRequest) -> Iterator[HTTPServer]:
    port = free_port()
    server = HTTPServer(
        url=f"http://127.0.0.1:{port}/mcp",
        token="t0ken",
        proc=None,  # type: ignore[arg-type]
        port=port,
        name="calc",
        mode=request.param,
    )
    server.start()
    yield server
    server.stop()


def test_a_restart_while_idle_reopens_the_session_and_sends_the_call_once_more(
    restartable: HTTPServer,
) -> None:
    # Regression: the connector kept the old session id, and the restarted server's answer
    # (404, or 400 naming the session) came back as the tool's own error on every call.
    # Sessions exist only in the handshake-era protocol (2026's is sessionless), which is
    # what servers from the registries speak; the test server is made to speak only it.
    connector = MCPConnector(
        MCPServerConfig(name="calc", url=restartable.url, bearer_token=restartable.token)
    )

    async def scenario() -> None:
        try:
            assert (await connector.call_tool("add", {"a": 1, "b": 1})).structured == {"sum": 2}
            first = connector._session
            assert first is not None and first.client.protocol_version < "2026"
            restartable.stop()
            restartable.start()  # same port, a server that never saw our session
            # `add` is neither read-only nor idempotent: sending it again is still safe,
            # because the server refused the unknown session before running anything.
            assert (await connector.call_tool("add", {"a": 2, "b": 2})).structured == {"sum": 4}
            assert connector._session is not first and connector._session is not None
            assert "add" in [t.name for t in await connector.list_tools()]
        finally:
            await connector.aclose()

    run_async(scenario, timeout=60)


# -- a stdio server killed mid-call ---------------------------------------------------------


def _wait_for_line(log: Path, prefix: str, count: int) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [line for line in _lines(log) if line.startswith(prefix)]
        if len(lines) >= count:
            return lines[count - 1]
        time.sleep(0.02)
    raise AssertionError(f"{prefix!r} x{count} never appeared in {log}: {_lines(log)}")


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _stdio(log: Path, **options: Any) -> MCPConnector:
    return MCPConnector(
        MCPServerConfig(
            name="jobs",
            command=sys.executable,
            args=[str(HERE / "servers" / "jobs_stdio.py"), str(log)],
            **options,
        )
    )


async def _kill_when_started(log: Path, tool: str, count: int) -> None:
    import anyio

    line = await anyio.to_thread.run_sync(_wait_for_line, log, f"start {tool}", count)
    os.kill(int(line.split()[-1]), signal.SIGKILL)


@pytest.mark.parametrize("tool", ["lookup", "put"])
def test_a_safe_call_interrupted_by_a_crash_is_sent_again(tmp_path: Path, tool: str) -> None:
    log = tmp_path / "calls.log"
    connector = _stdio(log)

    async def scenario() -> Any:
        import anyio

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_kill_when_started, log, tool, 1)
                result = await connector.call_tool(tool, {"key": "k", "seconds": 2})
            return result.text
        finally:
            await connector.aclose()

    assert run_async(scenario, timeout=60) == f"{tool} k done"
    assert len([line for line in _lines(log) if line.startswith(f"start {tool}")]) == 2


def test_an_unsafe_call_interrupted_by_a_crash_is_not_sent_again(tmp_path: Path) -> None:
    # Regression: a tool that is neither read-only nor idempotent was sent again after the
    # crash, so a slow operation ran twice and reported success.
    log = tmp_path / "calls.log"
    connector = _stdio(log, retries=3)

    async def scenario() -> None:
        import anyio

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_kill_when_started, log, "charge", 1)
                with pytest.raises(MCPConnectionError, match=r"the call may have run") as caught:
                    await connector.call_tool("charge", {"key": "k", "seconds": 2})
            assert "not marked read-only or idempotent" in str(caught.value)
            # the connector still works: a new server process answers the next call
            lookup = await connector.call_tool("lookup", {"key": "x", "seconds": 0})
            assert lookup.text == "lookup x done"
        finally:
            await connector.aclose()

    run_async(scenario, timeout=60)
    assert len([line for line in _lines(log) if line.startswith("start charge")]) == 1


def test_annotations_map_onto_the_catalog(tmp_path: Path) -> None:
    connector = _stdio(tmp_path / "calls.log")

    async def scenario() -> dict[str, Any]:
        try:
            return {spec.name: spec for spec in await connector.tool_specs()}
        finally:
            await connector.aclose()

    specs = run_async(scenario, timeout=60)
    lookup, put, charge, wipe = (specs[f"jobs.{n}"] for n in ("lookup", "put", "charge", "wipe"))
    assert lookup.side_effects == "read" and lookup.safety_notes is None
    assert lookup.extra["title"] == "Look a key up"
    assert put.side_effects == "write" and "does not delete" in (put.safety_notes or "")
    assert charge.side_effects == "external" and charge.safety_notes is None  # no hints
    assert wipe.side_effects == "write" and "destructive" in (wipe.safety_notes or "")
