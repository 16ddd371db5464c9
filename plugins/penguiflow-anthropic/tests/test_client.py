"""AnthropicClient against a real HTTP server on 127.0.0.1 that speaks the Messages API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic_server import MODEL, answering, message, replying, streamed
from penguiflow_anthropic import AnthropicClient
from penguiflow_llm_http import RetryPolicy
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from pydantic import BaseModel

from penguiflow.llm import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMHTTPError,
    LLMImage,
    LLMResponse,
    LLMStreamError,
    LLMTool,
    LLMToolCall,
)
from penguiflow.plugins import resolve_driver
from penguiflow.testing import LLMAdapterConformance, run_async

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


class TestAnthropicConformance(LLMAdapterConformance):
    supports_tools = True
    supports_images = True

    async def make_client(self, replies: list[str]) -> AnthropicClient:
        self.server = ScriptedHTTPServer().start()
        self.server.add(*(answering(reply) for reply in replies))
        return client_for(self.server)

    async def make_tool_client(self, replies: list[LLMResponse]) -> AnthropicClient:
        self.server = ScriptedHTTPServer().start()
        self.server.add(*(replying(reply) for reply in replies))
        return client_for(self.server)

    async def close_client(self, client: Any) -> None:
        await client.aclose()
        self.server.stop()

    def sent_requests(self, client: Any) -> list[dict[str, Any]]:
        return [request.json() for request in self.server.requests]

    def wire_tool(self, tool: LLMTool) -> dict[str, Any]:
        return {
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.parameters,
        }

    def wire_tool_call(self, call: LLMToolCall) -> dict[str, Any]:
        return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}

    def wire_tool_result(self, call_id: str, content: str) -> dict[str, Any]:
        return {"type": "tool_result", "tool_use_id": call_id, "content": content}

    def wire_image(self, image: LLMImage) -> dict[str, Any]:
        if image.url is not None:
            return {"type": "image", "source": {"type": "url", "url": image.url}}
        source = {"type": "base64", "media_type": image.media_type, "data": image.data}
        return {"type": "image", "source": source}


def test_request_shape_system_roles_headers(server: ScriptedHTTPServer) -> None:
    server.add(message("fine"))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Checking."},
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "toolu_7"},
        {"role": "user", "content": "So?"},
    ]
    reply = run_async(lambda: complete(client_for(server, temperature=0), messages=messages))
    request = server.requests[0]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    body = request.json()
    assert body["system"] == "Be brief." and body["max_tokens"] == 4096 and body["temperature"] == 0
    assert body["messages"] == [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Checking."},
        {"role": "user", "content": '[result of toolu_7]\n{"temp": 21}\n\nSo?'},
    ]
    assert reply.text == "fine" and reply.model == MODEL
    assert reply.cost_usd == pytest.approx((20 * 0.80 + 6 * 4.00) / 1e6)


def test_credentials_from_environment_and_required_for_the_real_api(
    server: ScriptedHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(LLMConfigurationError, match="ANTHROPIC_API_KEY"):
        AnthropicClient("claude-sonnet-4-5")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env")
    server.add(message("a"), message("b"))
    run_async(lambda: complete(AnthropicClient("claude-x", base_url=server.url)))
    provider_client = AnthropicClient(
        "claude-x", base_url=server.url, token_provider=lambda force_refresh: "from-provider"
    )
    run_async(lambda: complete(provider_client))
    assert [r.headers["x-api-key"] for r in server.requests] == ["from-env", "from-provider"]


def test_json_schema_mode_forces_a_tool_and_reads_its_input(server: ScriptedHTTPServer) -> None:
    server.add(message(tool_input={"answer": "42", "confidence": 0.9}))
    reply = run_async(lambda: complete(client_for(server), response_format=Answer))
    body = server.requests[0].json()
    assert body["tools"][0]["name"] == "Answer"
    assert body["tools"][0]["input_schema"]["required"] == ["answer", "confidence"]
    assert body["tool_choice"] == {"type": "tool", "name": "Answer"}
    assert Answer.model_validate_json(reply.text) == Answer(answer="42", confidence=0.9)


def test_refused_tool_mode_steps_down_to_a_prefilled_reply(server: ScriptedHTTPServer) -> None:
    refusal = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "Thinking may not be enabled when tool_choice forces tool use.",
        },
    }
    server.add(ScriptedResponse(status=400, body=refusal))
    server.add(message('"answer": "7", "confidence": 1}'))
    client = client_for(server)
    reply = run_async(lambda: complete(client, response_format=Answer))
    assert json.loads(reply.text) == {"answer": "7", "confidence": 1}
    assert client.schema_mode_for(Answer) == "json_object"
    second = server.requests[1].json()
    assert "tools" not in second and second["messages"][-1] == {"role": "assistant", "content": "{"}
    assert '"confidence"' in second["system"]


def test_thinking_and_overload_retry(server: ScriptedHTTPServer) -> None:
    server.add(
        ScriptedResponse(status=529, body={"type": "error", "error": {"message": "Overloaded"}})
    )
    server.add(message("answer", thinking="let me think"))
    reply = run_async(lambda: complete(client_for(server)))
    assert reply.text == "answer" and reply.reasoning == "let me think"
    assert len(server.requests) == 2


def test_streaming_text_thinking_and_usage(server: ScriptedHTTPServer) -> None:
    server.add(streamed(["Hel", "lo"], thinking=["hmm"], usage=(33, 4)))
    chunks: list[tuple[str, bool]] = []
    thoughts: list[str] = []
    reply = run_async(
        lambda: complete(
            client_for(server),
            stream=True,
            on_stream_chunk=lambda piece, done: chunks.append((piece, done)),
            on_reasoning_chunk=lambda piece, done: thoughts.append(piece),
        )
    )
    assert reply.text == "Hello" and reply.reasoning == "hmm" and thoughts == ["hmm"]
    assert chunks == [("Hel", False), ("lo", False), ("", True)]
    assert reply.usage is not None
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (33, 4)


def test_streaming_a_tool_reply(server: ScriptedHTTPServer) -> None:
    server.add(streamed(['{"answer": ', '"x", "confidence": 0.5}'], tool_json=True))
    reply = run_async(lambda: complete(client_for(server), response_format=Answer, stream=True))
    assert Answer.model_validate_json(reply.text).answer == "x"


def test_stream_cut_or_error_midway_is_a_clear_error(server: ScriptedHTTPServer) -> None:
    server.add(streamed(["one ", "two ", "three"], cut_after=5))
    with pytest.raises(LLMStreamError, match="broke after 8 characters"):
        run_async(lambda: complete(client_for(server), stream=True), timeout=10)
    server.add(
        ScriptedResponse.sse(
            [{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}],
            event_names=["error"],
        )
    )
    with pytest.raises(LLMConnectionError, match="overloaded_error: Overloaded"):
        run_async(
            lambda: complete(client_for(server, retry=RetryPolicy(max_retries=0)), stream=True)
        )


def test_errors_name_the_provider_and_unknown_profiles(server: ScriptedHTTPServer) -> None:
    server.add(
        ScriptedResponse(
            status=404,
            body={
                "type": "error",
                "error": {"type": "not_found_error", "message": "model: claude-9"},
            },
        )
    )
    with pytest.raises(
        LLMHTTPError, match=r"Anthropic \(claude-9\) at .* answered 404: model: claude-9"
    ):
        run_async(lambda: complete(client_for(server, model="claude-9")))
    with pytest.raises(LLMConfigurationError, match="unknown model profile 'fast'"):
        AnthropicClient("claude-x", base_url=server.url, api_key="k", profile="fast")
    with pytest.raises(LLMConfigurationError, match="unknown option"):
        AnthropicClient("claude-x", base_url=server.url, api_key="k", temprature=1)


def test_the_anthropic_driver(server: ScriptedHTTPServer) -> None:
    client = resolve_driver(
        "llm_adapter", "anthropic", model="claude-x", base_url=server.url, api_key="k"
    )
    assert isinstance(client, AnthropicClient)
    server.add(message("via driver"))
    assert run_async(lambda: complete(client)).text == "via driver"
    with pytest.raises(LLMConfigurationError, match="needs model="):
        resolve_driver("llm_adapter", "anthropic")
