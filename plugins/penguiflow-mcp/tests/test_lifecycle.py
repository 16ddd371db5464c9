"""MCPConnector's structured concurrency against real servers: `async with` and an idempotent
`aclose()` end the session's owner task, a cancelled first call leaves nothing running, and
timeouts (ours, or a planner's deadline) cut a call without losing the session."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from conftest import HERE, HTTPServer
from penguiflow_mcp import (
    MCPConfigError,
    MCPConnectionError,
    MCPConnector,
    MCPError,
    MCPServerConfig,
    MCPToolError,
    catalog_from,
)

from penguiflow.errors import PenguiFlowError
from penguiflow.testing import leftover_tasks, run_async


def http(server: HTTPServer, **options: Any) -> MCPConnector:
    return MCPConnector(
        MCPServerConfig(name="calc", url=server.url, bearer_token=server.token, **options)
    )


def test_async_with_closes_the_session_and_aclose_is_idempotent(http_server: HTTPServer) -> None:
    async def scenario() -> None:
        before = set(asyncio.all_tasks())
        async with http(http_server) as connector:
            assert (await connector.call_tool("add", {"a": 1, "b": 1})).structured == {"sum": 2}
            assert connector._session is not None
            owner = connector._session._task
            assert owner is not None and not owner.done()
        assert connector._session is None
        assert owner.done() and not owner.cancelled()  # it left the SDK's context cleanly
        await connector.aclose()
        await connector.aclose()
        assert await leftover_tasks(before) == set()
        # Closed is not dead: the next call opens a new session.
        assert (await connector.call_tool("add", {"a": 2, "b": 2})).structured == {"sum": 4}
        await connector.aclose()
        assert await leftover_tasks(before) == set()

    run_async(scenario)


def test_a_stdio_session_closed_by_async_with_leaves_no_task(time_server_command: str) -> None:
    async def scenario() -> None:
        before = set(asyncio.all_tasks())
        config = MCPServerConfig(name="time", command=time_server_command)
        async with MCPConnector(config) as connector:
            result = await connector.call_tool("get_current_time", {"timezone": "UTC"})
            assert result.structured["timezone"] == "UTC"
        assert connector._session is None
        assert await leftover_tasks(before) == set()

    run_async(scenario)


def test_cancelling_a_first_call_while_it_connects_leaves_no_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: the owner task of a session still connecting was left running (until the
    # SDK's own timeout) when the call that opened it was cancelled.
    from penguiflow_mcp import connector as module

    started = asyncio.Event()
    original = module._Session._own

    async def spying(self: Any, *args: Any) -> None:
        started.set()
        await original(self, *args)

    monkeypatch.setattr(module._Session, "_own", spying)
    silent = MCPConnector(
        MCPServerConfig(
            name="noise", command=sys.executable, args=[str(HERE / "servers" / "garbage.py")]
        )
    )

    async def scenario() -> None:
        before = set(asyncio.all_tasks())
        call = asyncio.create_task(silent.list_tools())
        await asyncio.wait_for(started.wait(), 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await leftover_tasks(before - {call}) == set()
        assert silent._session is None

    run_async(scenario, timeout=60)


def test_a_call_past_timeout_s_is_cut_and_the_session_goes_on(http_server: HTTPServer) -> None:
    async def scenario() -> None:
        async with http(http_server, timeout_s=0.5) as connector:
            assert (await connector.call_tool("add", {"a": 1, "b": 1})).structured == {"sum": 2}
            session = connector._session
            with pytest.raises(MCPToolError, match=r"calc\.slow did not answer within 0\.5s"):
                await connector.call_tool("slow", {"seconds": 30})
            assert (await connector.call_tool("add", {"a": 2, "b": 3})).structured == {"sum": 5}
            assert connector._session is session  # not taken for a dropped connection

    run_async(scenario)


def test_a_planner_deadline_cancels_an_mcp_call_in_flight(http_server: HTTPServer) -> None:
    from penguiflow_planner import PlannerFinish, ReactPlanner

    from penguiflow.llm import ScriptedLLMClient

    async def scenario() -> None:
        before = set(asyncio.all_tasks())
        async with http(http_server) as connector:
            llm = ScriptedLLMClient(
                [json.dumps({"next_node": "calc.slow", "args": {"seconds": 30}})]
            )
            planner = ReactPlanner(
                llm_client=llm, catalog=await catalog_from([connector]), deadline_s=0.5
            )
            result = await planner.run("take your time")
            assert isinstance(result, PlannerFinish) and result.finish_reason == "deadline"
            assert result.reason == "budget_exhausted"  # PenguiFlow's reason for it
            assert result.metadata["interrupted"] == "tool calc.slow"
            assert (await connector.call_tool("add", {"a": 4, "b": 4})).structured == {"sum": 8}
        assert await leftover_tasks(before) == set()

    run_async(scenario)


def test_errors_are_penguiflow_errors_and_keep_their_builtin_bases() -> None:
    assert issubclass(MCPError, PenguiFlowError) and issubclass(MCPError, RuntimeError)
    assert issubclass(MCPConnectionError, MCPError) and issubclass(
        MCPConnectionError, ConnectionError
    )
    assert issubclass(MCPToolError, MCPError)
    assert issubclass(MCPConfigError, PenguiFlowError) and issubclass(MCPConfigError, ValueError)
    with pytest.raises(PenguiFlowError, match="exactly one of"):
        from penguiflow_mcp import load_config

        load_config({"servers": [{"name": "x"}]})
