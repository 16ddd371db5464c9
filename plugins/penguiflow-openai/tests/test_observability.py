"""Embeddings calls as llm.call events (issue 18), over a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from penguiflow_llm_http import RetryPolicy
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from penguiflow_openai import OpenAIEmbeddingsClient

from penguiflow.testing import collect_events, run_async
from penguiflow.tracecontext import SpanContext, root_span, using_span

ANSWER = {
    "object": "list",
    "model": "text-embedding-3-small",
    "data": [
        {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
        {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
    ],
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}


def test_an_embeddings_call_is_an_llm_call_event_and_sends_its_traceparent() -> None:
    parent = root_span("a" * 32).child()

    async def embed(url: str) -> Any:
        async with OpenAIEmbeddingsClient(
            "text-embedding-3-small",
            base_url=url,
            api_key="k",
            retry=RetryPolicy(max_retries=1, base_delay_s=0.0, jitter=0.0),
        ) as client:
            with using_span(parent):
                return await client.embed(["private text one", "private text two"])

    with collect_events() as seen, ScriptedHTTPServer() as server:
        server.add(ScriptedResponse(status=503, body={}), ScriptedResponse(body=ANSWER))
        run_async(lambda: embed(server.url))
        headers = [request.headers.get("traceparent") for request in server.requests]
    [event] = seen.named("llm.call")
    assert event.attributes["gen_ai.operation.name"] == "embeddings"
    assert event.attributes["gen_ai.system"] == "openai"
    assert event.attributes["gen_ai.request.model"] == "text-embedding-3-small"
    assert event.attributes["retries"] == 1 and event.attributes["status"] == "ok"
    assert event.measurements["input_tokens"] == 8
    assert event.measurements["cost_usd"] > 0
    assert event.parent_span_id == parent.span_id
    assert headers[0] == headers[1] and SpanContext.parse(headers[0]) == event.span
    assert "private text" not in repr(event)
