"""Progress notifications of a tool call (the everything server's
trigger-long-running-operation): every call carries a progress token, and each notification
reaches `on_progress` and, inside a planner run, the run's `stream_chunk` events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from penguiflow_mcp import MCPConnector, MCPProgress, MCPServerConfig, catalog_from

from penguiflow.current import using_context

LONG = "trigger-long-running-operation"


def test_on_progress_gets_every_notification(everything: Callable[..., MCPServerConfig]) -> None:
    seen: list[MCPProgress] = []

    async def scenario() -> None:
        async with MCPConnector(everything(), on_progress=seen.append) as connector:
            result = await connector.call_tool(LONG, {"duration": 0.3, "steps": 3})
            assert "Steps: 3" in result.text

    asyncio.run(scenario())
    assert [(p.progress, p.total) for p in seen] == [(1, 3), (2, 3), (3, 3)]
    assert {(p.server, p.tool) for p in seen} == {("everything", LONG)}
    assert seen[0].text == "1/3"


def test_a_planner_run_streams_progress_chunks(everything: Callable[..., MCPServerConfig]) -> None:
    from penguiflow_planner import PlannerEvent, PlannerFinish, ReactPlanner

    from penguiflow.llm import ScriptedLLMClient

    events: list[PlannerEvent] = []
    seen: list[MCPProgress] = []

    async def on_progress(update: MCPProgress) -> None:  # async callbacks are awaited
        seen.append(update)

    async def scenario() -> Any:
        async with MCPConnector(everything(), on_progress=on_progress) as connector:
            catalog = await catalog_from([connector])
            llm = ScriptedLLMClient(
                [
                    json.dumps(
                        {"next_node": f"everything.{LONG}", "args": {"duration": 0.2, "steps": 2}}
                    ),
                    json.dumps({"next_node": None, "args": {"answer": "done"}}),
                ]
            )
            planner = ReactPlanner(llm_client=llm, catalog=catalog, event_callback=events.append)
            return await planner.run("run the long operation")

    result = asyncio.run(scenario())
    assert isinstance(result, PlannerFinish)
    chunks = [e.extra for e in events if e.event_type == "stream_chunk"]
    assert [c["seq"] for c in chunks] == [0, 1]
    assert [c["done"] for c in chunks] == [False, True]
    assert len({c["stream_id"] for c in chunks}) == 1
    assert chunks[0]["stream_id"].startswith(f"mcp-progress:everything.{LONG}:")
    meta = chunks[1]["meta"]
    assert meta["channel"] == "progress"
    assert (meta["progress"], meta["total"]) == (2, 2)
    assert [c["text"] for c in chunks] == ["1/2", "2/2"]
    assert len(seen) == 2


class _BrokenContext:
    """A tool context whose emit_chunk fails (a run that has ended, say)."""

    async def emit_chunk(self, stream_id: str, seq: int, text: str, **_: Any) -> None:
        raise RuntimeError("the run is over")


def test_forwarding_failures_never_fail_the_call(
    everything: Callable[..., MCPServerConfig], caplog: pytest.LogCaptureFixture
) -> None:
    def bad_callback(update: MCPProgress) -> None:
        raise ValueError("callback bug")

    async def scenario() -> str:
        async with MCPConnector(everything(), on_progress=bad_callback) as connector:
            with using_context(_BrokenContext()):
                result = await connector.call_tool(LONG, {"duration": 0.2, "steps": 2})
            return result.text

    with caplog.at_level(logging.WARNING, logger="penguiflow.mcp"):
        assert "Steps: 2" in asyncio.run(scenario())
    warnings = [
        r.getMessage() for r in caplog.records if "could not be forwarded" in r.getMessage()
    ]
    assert any("callback bug" in w for w in warnings)
    assert any("the run is over" in w for w in warnings)


class _NodeLikeContext:
    """A node's ctx: emit_chunk needs the message it answers, which a tool never sees."""

    def __init__(self) -> None:
        self.calls = 0

    async def emit_chunk(self, *, parent: Any, text: str, **_: Any) -> None:
        self.calls += 1


def test_a_nodes_context_gets_no_chunks_and_the_call_works(
    everything: Callable[..., MCPServerConfig],
) -> None:
    ctx = _NodeLikeContext()
    seen: list[MCPProgress] = []

    async def scenario() -> None:
        async with MCPConnector(everything(), on_progress=seen.append) as connector:
            with using_context(ctx):
                await connector.call_tool(LONG, {"duration": 0.2, "steps": 2})

    asyncio.run(scenario())
    assert ctx.calls == 0 and len(seen) == 2
