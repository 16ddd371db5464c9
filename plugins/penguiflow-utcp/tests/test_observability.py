"""connector.call events and the traceparent header for UTCP (issue 18), against the manual
app on 127.0.0.1 (its /echo-headers tool echoes the traceparent it received)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from penguiflow_utcp import UTCPConnector, UTCPToolError

from penguiflow.observability import Event
from penguiflow.testing import collect_events, run_async
from penguiflow.tracecontext import SpanContext, root_span, using_span


@pytest.fixture
def events() -> Iterator[list[Event]]:
    with collect_events() as seen:
        yield seen


def test_a_call_is_a_connector_call_and_its_request_carries_its_span(
    manual_url: str, events: list[Event]
) -> None:
    parent = root_span("d" * 32).child()
    connector = UTCPConnector.http("vars", manual_url + "-variables")

    async def scenario() -> Any:
        try:
            with using_span(parent):
                echoed = await connector.call_tool("plain", {})
                with pytest.raises(UTCPToolError):
                    await connector.call_tool("nope", {})
            return echoed.structured
        finally:
            await connector.aclose()

    echoed = run_async(scenario)
    ok, refused = (e for e in events if e.qualified_name == "connector.call")
    assert ok.attributes == {
        "connector": "utcp", "server": "vars", "tool": "plain", "retried": 0, "status": "ok",
    }  # fmt: skip
    assert ok.parent_span_id == parent.span_id and ok.span is not None
    assert SpanContext.parse(echoed["traceparent"]) == ok.span
    assert refused.attributes["status"] == "error"
    assert refused.attributes["error_type"] == "UTCPToolError"


def test_without_a_span_or_a_listener_no_header_is_sent(manual_url: str) -> None:
    connector = UTCPConnector.http("vars", manual_url + "-variables")

    async def scenario() -> Any:
        try:
            return (await connector.call_tool("plain", {})).structured
        finally:
            await connector.aclose()

    assert run_async(scenario) == {"x_secret": None}
