"""llm.call events and the traceparent header, over a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from penguiflow_llm_http import (
    Credential,
    HTTPXTransport,
    ModelProfile,
    PricingTable,
    ProviderClient,
    ProviderReply,
    ProviderRequest,
    RetryPolicy,
    SchemaMode,
    SSEEvent,
    StreamDelta,
)
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse

from penguiflow.llm import LLMHTTPError, LLMMessage, LLMUsage
from penguiflow.observability import Event
from penguiflow.testing import collect_events, run_async
from penguiflow.tracecontext import SpanContext, root_span, using_span

USER = [{"role": "user", "content": "my secret question"}]


class JSONCodec:
    """A wire format of our own: `{"text", "model", "finish", "usage"}` replies, `{"t"}`
    stream events ending with `{"done": true}`."""

    name = "Acme-cloud"

    def build_request(self, **kwargs: Any) -> ProviderRequest:
        messages: list[LLMMessage] = kwargs["messages"]
        body = {"model": kwargs["model"], "n": len(messages), "stream": kwargs["stream"]}
        return ProviderRequest("/v1/chat", body)

    def parse_reply(self, body: Any) -> ProviderReply:
        usage = LLMUsage(**body["usage"]) if "usage" in body else None
        return ProviderReply(
            text=body["text"], usage=usage, model=body.get("model"), finish_reason=body["finish"]
        )

    def parse_event(self, event: SSEEvent) -> StreamDelta | None:
        data = json.loads(event.data)
        usage = LLMUsage(**data["usage"]) if "usage" in data else None
        return StreamDelta(
            text=data.get("t", ""), usage=usage, done=data.get("done", False), finish_reason="stop"
        )

    def rejects_mode(self, error: LLMHTTPError, mode: SchemaMode) -> bool:
        return False


REPLY = {
    "text": "the answer",
    "model": "acme-1-2026",
    "finish": "stop",
    "usage": {
        "input_tokens": 1000,
        "output_tokens": 10,
        "cache_read_input_tokens": 400,
        "cache_creation_input_tokens": 0,
    },
}


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as running:
        yield running


@pytest.fixture
def events() -> Iterator[list[Event]]:
    with collect_events() as seen:
        yield seen


def client(url: str) -> ProviderClient:
    transport = HTTPXTransport(url, provider="Acme", credential=Credential(key="k", source="t"))
    return ProviderClient(
        model="acme-1",
        codec=JSONCodec(),
        transport=transport,
        profile=ModelProfile(name="acme"),
        pricing=PricingTable({"acme-1": (1.0, 2.0)}),
        retry=RetryPolicy(max_retries=2, base_delay_s=0.0, jitter=0.0),
    )


def complete(url: str, **options: Any) -> Callable[[], Any]:
    async def go() -> Any:
        async with client(url) as llm:
            return await llm.complete(messages=USER, **options)

    return go


def llm_calls(events: list[Event]) -> list[Event]:
    return [e for e in events if e.qualified_name == "llm.call"]


def test_a_call_is_one_llm_call_event_with_the_genai_attributes(
    server: ScriptedHTTPServer, events: list[Event]
) -> None:
    server.add(ScriptedResponse(body=REPLY))
    parent = root_span("9" * 32).child()

    async def inside_a_span() -> Any:
        with using_span(parent):
            return await complete(server.url)()

    response = run_async(inside_a_span)
    [event] = llm_calls(events)
    attributes = event.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == "acme"
    assert attributes["gen_ai.request.model"] == "acme-1"
    assert attributes["gen_ai.response.model"] == "acme-1-2026"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["status"] == "ok" and attributes["stream"] is False
    assert attributes["retries"] == 0
    assert event.measurements["input_tokens"] == 1000
    assert event.measurements["output_tokens"] == 10
    assert event.measurements["cache_read_tokens"] == 400
    assert event.measurements["cost_usd"] == pytest.approx(response.cost_usd)
    # Its span is a child of the caller's, and its request carried that span.
    assert event.span is not None and event.span.trace_id == parent.trace_id
    assert event.parent_span_id == parent.span_id
    assert event.duration_ms is not None and event.duration_ms >= 0
    sent = SpanContext.parse(server.requests[0].headers["traceparent"])
    assert sent == event.span
    # Content is off by default: neither the prompt nor the reply is on the event.
    assert "my secret question" not in repr(event) and "the answer" not in repr(event)


def test_content_is_captured_only_when_turned_on(
    server: ScriptedHTTPServer, events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PENGUIFLOW_CAPTURE_CONTENT", "1")
    server.add(ScriptedResponse(body=REPLY))
    run_async(complete(server.url))
    [event] = llm_calls(events)
    assert "my secret question" in event.attributes["gen_ai.input.messages"]
    assert "the answer" in event.attributes["gen_ai.output.messages"]


def test_retries_are_counted_and_every_attempt_carries_the_same_traceparent(
    server: ScriptedHTTPServer, events: list[Event]
) -> None:
    server.add(
        ScriptedResponse(status=503, body={"error": {"message": "busy"}}),
        ScriptedResponse(body=REPLY),
    )
    run_async(complete(server.url))
    [event] = llm_calls(events)
    assert event.attributes["retries"] == 1 and event.attributes["status"] == "ok"
    first, second = (r.headers["traceparent"] for r in server.requests)
    assert first == second
    # Outside any span the call starts a trace of its own.
    assert event.parent_span_id is None and event.span is not None


def test_a_failed_call_is_an_error_event(server: ScriptedHTTPServer, events: list[Event]) -> None:
    server.add(ScriptedResponse(status=400, body={"error": {"message": "bad model"}}))
    with pytest.raises(LLMHTTPError):
        run_async(complete(server.url))
    [event] = llm_calls(events)
    assert event.attributes["status"] == "error"
    assert event.attributes["error_type"] == "LLMHTTPError"
    assert "bad model" in event.attributes["error"]


def test_a_streamed_call_says_so_and_counts_its_tokens(
    server: ScriptedHTTPServer, events: list[Event]
) -> None:
    server.add(
        ScriptedResponse.sse(
            [
                {"t": "the "},
                {"t": "answer", "usage": {"input_tokens": 5, "output_tokens": 2}},
                {"done": True},
            ]
        )
    )
    response = run_async(complete(server.url, stream=True))
    assert response.text == "the answer"
    [event] = llm_calls(events)
    assert event.attributes["stream"] is True
    assert event.measurements["input_tokens"] == 5
    assert "traceparent" in server.requests[0].headers


def test_nothing_is_published_and_no_header_is_sent_when_nobody_listens(
    server: ScriptedHTTPServer,
) -> None:
    server.add(ScriptedResponse(body=REPLY))
    run_async(complete(server.url))
    assert "traceparent" not in server.requests[0].headers
