"""Stop reasons and truncation, refusals, prompt-cache usage and driver URLs, against a real
HTTP server on 127.0.0.1 speaking the Messages API (Anthropic's own bodies)."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic_server import MODEL, message
from penguiflow_anthropic import AnthropicClient
from penguiflow_llm_http import RetryPolicy
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from pydantic import BaseModel

from penguiflow.llm import LLMTruncationError
from penguiflow.plugins import resolve_driver
from penguiflow.testing import run_async

FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.02)
USER = [{"role": "user", "content": "hi"}]


class Answer(BaseModel):
    answer: str
    confidence: float


def client_for(server: ScriptedHTTPServer, **options: Any) -> AnthropicClient:
    options.setdefault("retry", FAST)
    options.setdefault("api_key", "sk-ant-test")
    return AnthropicClient(
        options.pop("model", "claude-3-5-haiku-latest"), base_url=server.url, **options
    )


async def complete(client: AnthropicClient, **kwargs: Any) -> Any:
    try:
        return await client.complete(**{"messages": USER, **kwargs})
    finally:
        await client.aclose()


def with_body(response: ScriptedResponse, **changes: Any) -> ScriptedResponse:
    assert isinstance(response.body, dict)
    response.body.update(changes)
    return response


def test_stop_reasons_map_to_finish_reasons(server: ScriptedHTTPServer) -> None:
    server.add(message("done"), with_body(message("cut sho"), stop_reason="max_tokens"))
    assert run_async(lambda: complete(client_for(server))).finish_reason == "stop"
    assert run_async(lambda: complete(client_for(server))).finish_reason == "length"


def test_a_tool_reply_cut_by_max_tokens_raises_without_repairs(server: ScriptedHTTPServer) -> None:
    # A forced tool call stopped by max_tokens: its input is whatever parsed so far (here
    # nothing) and the stop reason says why.
    server.add(with_body(message(tool_input={}), stop_reason="max_tokens"))
    server.add(message(tool_input={"answer": "never asked", "confidence": 1}))
    client = client_for(server, max_tokens=32)
    with pytest.raises(LLMTruncationError, match=r"max_tokens limit \(32\)") as caught:
        run_async(lambda: complete(client, response_format=Answer))
    assert caught.value.max_tokens == 32
    assert len(server.requests) == 1


def test_a_streamed_prefilled_reply_cut_by_max_tokens(server: ScriptedHTTPServer) -> None:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"model": MODEL, "usage": {"input_tokens": 9}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": '"answer": "a very lo'}},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
         "usage": {"output_tokens": 8}},
        {"type": "message_stop"},
    ]  # fmt: skip
    server.add(ScriptedResponse.sse(events, event_names=[str(e["type"]) for e in events]))
    client = client_for(server, profile="prompt-only")
    with pytest.raises(LLMTruncationError, match="max_tokens"):
        run_async(lambda: complete(client, response_format=Answer, stream=True))
    assert len(server.requests) == 1


def test_refusal_of_a_schema_steps_down(server: ScriptedHTTPServer) -> None:
    invalid_schema = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "tools.0.custom.input_schema: JSON schema is invalid. It must match "
            "JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12).",
        },
    }
    server.add(ScriptedResponse(status=400, body=invalid_schema))
    server.add(message('"answer": "7", "confidence": 1}'))
    client = client_for(server)
    reply = run_async(lambda: complete(client, response_format=Answer))
    assert Answer.model_validate_json(reply.text).answer == "7"
    assert "tools" in server.requests[0].json() and "tools" not in server.requests[1].json()


def test_prompt_cache_tokens_are_counted_and_priced(server: ScriptedHTTPServer) -> None:
    response = message("cached")
    assert isinstance(response.body, dict)
    response.body["usage"] = {
        "input_tokens": 50,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 4000,
        "output_tokens": 20,
    }
    server.add(response)
    reply = run_async(lambda: complete(client_for(server)))
    usage = reply.usage
    assert usage.input_tokens == 5050 and usage.output_tokens == 20
    assert usage.cache_read_input_tokens == 4000 and usage.cache_creation_input_tokens == 1000
    # claude-3-5-haiku: $0.80 input, $0.08 cache read, $1.00 cache write, $4.00 output
    expected = (50 * 0.80 + 4000 * 0.08 + 1000 * 1.00 + 20 * 4.00) / 1e6
    assert reply.cost_usd == pytest.approx(expected)


def test_prompt_cache_tokens_in_a_stream(server: ScriptedHTTPServer) -> None:
    start_usage = {"input_tokens": 5, "cache_read_input_tokens": 300, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"model": MODEL, "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "hello"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]  # fmt: skip
    server.add(ScriptedResponse.sse(events, event_names=[str(e["type"]) for e in events]))
    reply = run_async(lambda: complete(client_for(server), stream=True))
    assert reply.text == "hello" and reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.cache_read_input_tokens) == (305, 300)
    assert reply.usage.output_tokens == 7


def test_a_driver_url_sets_base_url_and_model(server: ScriptedHTTPServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    client = resolve_driver(
        "llm_adapter", f"anthropic://127.0.0.1:{port}?model=claude-haiku-4-5", api_key="k"
    )
    assert isinstance(client, AnthropicClient) and client.model == "claude-haiku-4-5"
    assert client.base_url == f"http://127.0.0.1:{port}"
    server.add(message("via url"))
    assert run_async(lambda: complete(client)).text == "via url"
    assert server.requests[0].path == "/v1/messages"
