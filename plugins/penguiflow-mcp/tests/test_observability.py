"""connector.call events and trace context for MCP (issue 18): over streamable HTTP to our
test server (which records the traceparent headers it receives) and over stdio."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import HTTPServer
from penguiflow_mcp import MCPConnector, MCPServerConfig, MCPToolError

from penguiflow.observability import Event
from penguiflow.testing import collect_events, run_async
from penguiflow.tracecontext import SpanContext, root_span, using_span


@pytest.fixture
def events() -> Iterator[list[Event]]:
    with collect_events() as seen:
        yield seen


def calls(events: list[Event]) -> list[Event]:
    return [e for e in events if e.qualified_name == "connector.call"]


def test_a_tool_call_is_a_connector_call_whose_span_reaches_the_server_as_traceparent(
    http_server: HTTPServer, events: list[Event]
) -> None:
    parent = root_span("c" * 32).child()
    connector = MCPConnector(
        MCPServerConfig(name="calc", url=http_server.url, bearer_token=http_server.token)
    )

    async def scenario() -> Any:
        try:
            with using_span(parent):
                await connector.call_tool("add", {"a": 2, "b": 3})
                with pytest.raises(MCPToolError):
                    await connector.call_tool("fail", {"reason": "on purpose"})
            return json.loads((await connector.call_tool("traceparents", {})).text)
        finally:
            await connector.aclose()

    received = run_async(scenario)
    added, failed, _ = calls(events)
    assert added.attributes == {
        "connector": "mcp", "server": "calc", "tool": "add", "retried": 0, "status": "ok",
    }  # fmt: skip
    assert added.parent_span_id == parent.span_id and added.span is not None
    assert added.span.trace_id == parent.trace_id and added.duration_ms is not None
    assert failed.attributes["status"] == "error"
    assert failed.attributes["error_type"] == "MCPToolError"
    # The server got each call's own span as its traceparent header.
    spans = {SpanContext.parse(value) for value in received}
    assert added.span in spans and failed.span in spans
    # Arguments and results are content: not on the events by default.
    assert "on purpose" not in repr(added) and "sum" not in repr(added)


def test_over_stdio_the_call_is_observed_too(time_server_command: str, events: list[Event]) -> None:
    connector = MCPConnector(MCPServerConfig(name="time", command=time_server_command))

    async def scenario() -> None:
        try:
            await connector.call_tool("get_current_time", {"timezone": "UTC"})
        finally:
            await connector.aclose()

    run_async(scenario)
    [call] = calls(events)
    assert call.attributes["server"] == "time" and call.attributes["status"] == "ok"
    # Outside any span the call starts a trace of its own.
    assert call.span is not None and call.parent_span_id is None
