"""OpenAIClient against a real HTTP server on 127.0.0.1 that speaks Chat Completions."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from openai_server import answering, completion, replying, streamed
from penguiflow_llm_http import PricingTable, RetryPolicy
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from penguiflow_openai import OpenAIClient, strict_compatible
from pydantic import BaseModel

from penguiflow.llm import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMHTTPError,
    LLMImage,
    LLMReplyError,
    LLMResponse,
    LLMStreamError,
    LLMTimeoutError,
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


def client_for(server: ScriptedHTTPServer, **options: Any) -> OpenAIClient:
    options.setdefault("retry", FAST)
    return OpenAIClient(options.pop("model", "gpt-4o-mini"), base_url=server.url, **options)


async def complete(client: OpenAIClient, **kwargs: Any) -> Any:
    try:
        return await client.complete(**{"messages": USER, **kwargs})
    finally:
        await client.aclose()


# -- the kernel's suite ----------------------------------------------------------------------


class TestOpenAIConformance(LLMAdapterConformance):
    supports_tools = True
    supports_images = True

    async def make_client(self, replies: list[str]) -> OpenAIClient:
        self.server = ScriptedHTTPServer().start()
        self.server.add(*(answering(reply) for reply in replies))
        return client_for(self.server, api_key="sk-test")

    async def make_tool_client(self, replies: list[LLMResponse]) -> OpenAIClient:
        self.server = ScriptedHTTPServer().start()
        self.server.add(*(replying(reply) for reply in replies))
        return client_for(self.server, api_key="sk-test")

    async def close_client(self, client: Any) -> None:
        await client.aclose()
        self.server.stop()

    def sent_requests(self, client: Any) -> list[dict[str, Any]]:
        return [request.json() for request in self.server.requests]

    def wire_tool(self, tool: LLMTool) -> dict[str, Any]:
        function = {"name": tool.name, "description": tool.description}
        return {"type": "function", "function": {**function, "parameters": tool.parameters}}

    def wire_tool_call(self, call: LLMToolCall) -> dict[str, Any]:
        arguments = json.dumps(call.arguments)
        function = {"name": call.name, "arguments": arguments}
        return {"id": call.id, "type": "function", "function": function}

    def wire_tool_result(self, call_id: str, content: str) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": call_id, "content": content}

    def wire_image(self, image: LLMImage) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": image.data_url()}}


# -- requests --------------------------------------------------------------------------------


def test_request_shape_roles_and_auth(server: ScriptedHTTPServer) -> None:
    server.add(completion("fine"))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Checking."},
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call-7"},
    ]
    client = client_for(server, api_key="sk-secret", temperature=0.2, seed=7)
    reply = run_async(lambda: complete(client, messages=messages))
    request = server.requests[0]
    assert request.path == "/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret"
    body = request.json()
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0.2 and body["seed"] == 7
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][3]["content"] == '[result of call-7]\n{"temp": 21}'
    assert reply.text == "fine" and reply.model == "gpt-4o-mini-2024-07-18"
    assert reply.usage is not None and (reply.usage.input_tokens, reply.usage.output_tokens) == (
        12,
        5,
    )
    assert reply.cost_usd == pytest.approx((12 * 0.15 + 5 * 0.60) / 1e6)


def test_credentials_provider_beats_environment_and_key_beats_nothing(
    server: ScriptedHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    server.add(completion("a"), completion("b"), completion("c"))
    run_async(lambda: complete(client_for(server)))
    run_async(lambda: complete(client_for(server, token_provider=lambda force_refresh: "tok-1")))
    run_async(lambda: complete(client_for(server, api_key="sk-arg")))
    seen = [r.headers["authorization"] for r in server.requests]
    assert seen == ["Bearer sk-from-env", "Bearer tok-1", "Bearer sk-arg"]


def test_official_endpoint_without_credentials_is_a_clear_error() -> None:
    with pytest.raises(LLMConfigurationError, match="OPENAI_API_KEY"):
        OpenAIClient("gpt-4o")
    with pytest.raises(LLMConfigurationError, match="not both"):
        OpenAIClient("gpt-4o", api_key="k", token_provider=lambda force_refresh: "t")


def test_a_401_asks_the_token_provider_for_a_fresh_token(server: ScriptedHTTPServer) -> None:
    calls: list[bool] = []

    async def provider(*, force_refresh: bool = False) -> str:
        calls.append(force_refresh)
        return "fresh" if force_refresh else "stale"

    server.add(ScriptedResponse(status=401, body={"error": {"message": "expired"}}))
    server.add(completion("ok"))
    reply = run_async(lambda: complete(client_for(server, token_provider=provider)))
    assert reply.text == "ok" and calls == [False, True]
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer stale",
        "Bearer fresh",
    ]


def test_secrets_never_appear_in_errors(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(status=401, body={"error": {"message": "bad key sk-secret-123"}}))
    client = client_for(server, api_key="sk-secret-123")
    with pytest.raises(LLMHTTPError) as caught:
        run_async(lambda: complete(client))
    assert "sk-secret-123" not in str(caught.value) and "sk-secret-123" not in caught.value.body
    assert "***" in str(caught.value) and "check the API key" in str(caught.value)
    assert "sk-secret" not in repr(client) and "sk-secret" not in repr(client.transport)


def test_unknown_profile_and_options_are_named() -> None:
    with pytest.raises(LLMConfigurationError, match="unknown model profile 'turbo'; known"):
        OpenAIClient("m", base_url="http://127.0.0.1:9", profile="turbo")
    with pytest.raises(LLMConfigurationError, match=r"unknown option\(s\) \['temprature'\]"):
        OpenAIClient("m", base_url="http://127.0.0.1:9", temprature=0.1)


def test_profiles_follow_the_model_name() -> None:
    def mode(model: str) -> str:
        return OpenAIClient(model, base_url="http://127.0.0.1:9").schema_mode

    assert mode("gpt-4o-mini") == "json_schema"
    assert mode("gpt-3.5-turbo") == "json_object"
    assert mode("deepseek-r1:14b") == "json_object"
    assert mode("some-local-model") == "json_schema"
    forced = OpenAIClient("x", base_url="http://127.0.0.1:9", profile="prompt-only")
    assert forced.schema_mode == "prompt"


# -- structured output -------------------------------------------------------------------------


def test_json_schema_mode_sends_the_schema(server: ScriptedHTTPServer) -> None:
    server.add(completion('{"answer": "42", "confidence": 0.9}'))
    reply = run_async(lambda: complete(client_for(server), response_format=Answer))
    sent = server.requests[0].json()["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Answer"
    assert sent["json_schema"]["schema"]["required"] == ["answer", "confidence"]
    assert Answer.model_validate_json(reply.text) == Answer(answer="42", confidence=0.9)


def test_strict_only_for_schemas_strict_mode_accepts() -> None:
    closed = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert strict_compatible(closed)
    assert not strict_compatible({**closed, "required": []})
    assert not strict_compatible(Answer.model_json_schema())  # no additionalProperties: false


def test_a_refused_mode_is_dropped_for_the_model(server: ScriptedHTTPServer) -> None:
    refusal = {"error": {"message": "response_format json_schema is not supported by this model"}}
    server.add(ScriptedResponse(status=400, body=refusal))
    server.add(completion('{"answer": "a", "confidence": 1}'))
    server.add(completion('{"answer": "b", "confidence": 1}'))
    client = client_for(server)

    async def scenario() -> None:
        await client.complete(messages=USER, response_format=Answer)
        assert client.schema_mode_for(Answer) == "json_object"
        await client.complete(messages=USER, response_format=Answer)
        await client.aclose()

    run_async(scenario)
    modes = [r.json()["response_format"]["type"] for r in server.requests]
    assert modes == ["json_schema", "json_object", "json_object"]
    system = server.requests[1].json()["messages"][0]
    assert system["role"] == "system" and '"confidence"' in system["content"]


def test_invalid_reply_is_repaired_with_its_errors(server: ScriptedHTTPServer) -> None:
    server.add(completion('{"answer": "42"}', usage=(10, 3)))
    server.add(completion('```json\n{"answer": "42", "confidence": 0.5}\n```', usage=(30, 8)))
    reply = run_async(lambda: complete(client_for(server), response_format=Answer))
    assert Answer.model_validate_json(reply.text).confidence == 0.5
    repair = server.requests[1].json()["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"answer": "42"}'}
    assert "confidence: Field required" in repair[-1]["content"]
    assert reply.usage is not None and reply.usage.input_tokens == 40  # both attempts count


def test_a_reply_that_never_validates_ends_with_a_clear_error(server: ScriptedHTTPServer) -> None:
    server.add(*(completion("I cannot do JSON, sorry") for _ in range(3)))
    with pytest.raises(LLMReplyError, match="did not reply with JSON matching Answer after 3") as e:
        run_async(lambda: complete(client_for(server, max_repairs=2), response_format=Answer))
    assert e.value.text == "I cannot do JSON, sorry" and e.value.errors
    assert len(server.requests) == 3


def test_a_json_schema_mapping_is_checked_too(server: ScriptedHTTPServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    server.add(completion('{"n": "three"}'), completion('{"n": 3}'))
    reply = run_async(lambda: complete(client_for(server), response_format=schema))
    assert json.loads(reply.text) == {"n": 3}
    assert (
        "$.n: expected integer, got string" in server.requests[1].json()["messages"][-1]["content"]
    )


# -- failures and retries ----------------------------------------------------------------------


def test_429_honours_retry_after(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(status=429, headers={"retry-after": "0.05"}, body="slow down"))
    server.add(completion("after the wait"))
    reply = run_async(lambda: complete(client_for(server)))
    assert reply.text == "after the wait" and len(server.requests) == 2


def test_a_retry_after_longer_than_allowed_is_raised_not_waited(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(status=429, headers={"retry-after": "3600"}, body={}))
    with pytest.raises(LLMHTTPError, match=r"answered 429.*rate limited") as caught:
        run_async(lambda: complete(client_for(server)))
    assert caught.value.retry_after_s == 3600 and len(server.requests) == 1


def test_server_errors_are_retried_then_raised(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(status=500, body={"error": {"message": "boom"}}))
    server.add(completion("recovered"))
    assert run_async(lambda: complete(client_for(server))).text == "recovered"
    server.add(*(ScriptedResponse(status=503, body="down") for _ in range(3)))
    with pytest.raises(LLMHTTPError, match="answered 503"):
        run_async(lambda: complete(client_for(server)))
    assert len(server.requests) == 2 + 3  # max_retries=2: three attempts


def test_a_400_is_not_retried(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(status=400, body={"error": {"message": "model does not exist"}}))
    with pytest.raises(LLMHTTPError, match="model does not exist"):
        run_async(lambda: complete(client_for(server)))
    assert len(server.requests) == 1


def test_malformed_json_body_is_an_error_after_retries(server: ScriptedHTTPServer) -> None:
    server.add(*(ScriptedResponse(body="<html>gateway</html>") for _ in range(3)))
    with pytest.raises(LLMHTTPError, match="not JSON"):
        run_async(lambda: complete(client_for(server)))
    server.add(ScriptedResponse(body={"unexpected": True}))
    with pytest.raises(LLMHTTPError, match="cannot read"):
        run_async(lambda: complete(client_for(server, retry=RetryPolicy(max_retries=0))))


def test_timeout_and_unreachable_server(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(body={}, delay_s=1.0))
    client = client_for(server, timeout_s=0.2, retry=RetryPolicy(max_retries=0))
    with pytest.raises(LLMTimeoutError, match=r"did not answer within 0\.2s"):
        run_async(lambda: complete(client))
    closed = OpenAIClient("m", base_url="http://127.0.0.1:9", retry=RetryPolicy(max_retries=0))
    with pytest.raises(LLMConnectionError, match="could not be reached"):
        run_async(lambda: complete(closed))


# -- streaming ---------------------------------------------------------------------------------


def test_streaming_sends_chunks_and_reasoning(server: ScriptedHTTPServer) -> None:
    server.add(streamed(["Hel", "lo ", "there"], reasoning=["thinking", "..."], usage=(9, 3)))
    chunks: list[tuple[str, bool]] = []
    thoughts: list[str] = []

    async def on_reasoning(piece: str, done: bool) -> None:
        thoughts.append(piece)

    reply = run_async(
        lambda: complete(
            client_for(server),
            stream=True,
            on_stream_chunk=lambda piece, done: chunks.append((piece, done)),
            on_reasoning_chunk=on_reasoning,
        )
    )
    assert reply.text == "Hello there" and reply.reasoning == "thinking..."
    assert chunks == [("Hel", False), ("lo ", False), ("there", False), ("", True)]
    assert thoughts == ["thinking", "..."]
    assert reply.usage is not None and reply.usage.input_tokens == 9
    body = server.requests[0].json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_a_stream_cut_midway_is_an_error_not_a_hang(server: ScriptedHTTPServer) -> None:
    server.add(streamed(["one ", "two ", "three"], cut_after=2))
    received: list[str] = []
    with pytest.raises(LLMStreamError, match="broke after 8 characters") as caught:
        run_async(
            lambda: complete(
                client_for(server),
                stream=True,
                on_stream_chunk=lambda piece, done: received.append(piece),
            ),
            timeout=10,
        )
    assert caught.value.partial == "one two " and received == ["one ", "two "]
    assert len(server.requests) == 1  # chunks were delivered: no retry repeats them


def test_a_stream_cut_before_any_text_is_retried(server: ScriptedHTTPServer) -> None:
    server.add(streamed(["never"], cut_after=0))
    server.add(streamed(["second ", "try"]))
    reply = run_async(lambda: complete(client_for(server), stream=True))
    assert reply.text == "second try" and len(server.requests) == 2


def test_an_error_event_mid_stream(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse.sse([{"error": {"message": "overloaded"}}]))
    with pytest.raises(LLMConnectionError, match="overloaded"):
        run_async(
            lambda: complete(client_for(server, retry=RetryPolicy(max_retries=0)), stream=True)
        )


# -- driver, pricing, azure --------------------------------------------------------------------


def test_the_openai_driver(server: ScriptedHTTPServer) -> None:
    client = resolve_driver("llm_adapter", "openai", model="local-model", base_url=server.url)
    assert isinstance(client, OpenAIClient) and client.model == "local-model"
    with pytest.raises(LLMConfigurationError, match="needs model="):
        resolve_driver("llm_adapter", "openai")
    server.add(completion("via driver"))
    assert run_async(lambda: complete(client)).text == "via driver"


def test_pricing_is_extendable_and_unknown_models_have_no_cost(server: ScriptedHTTPServer) -> None:
    server.add(completion("x", model="my-finetune-v2", usage=(1000, 1000)))
    server.add(completion("y", model="unpriced", usage=(5, 5)))
    pricing = PricingTable({"my-finetune": (1.0, 2.0)})
    priced = run_async(lambda: complete(client_for(server, pricing=pricing)))
    assert priced.cost_usd == pytest.approx(0.003)
    unpriced = run_async(lambda: complete(client_for(server, pricing=pricing)))
    assert unpriced.cost_usd is None and unpriced.usage is not None


def test_azure_uses_deployment_path_version_and_api_key_header(server: ScriptedHTTPServer) -> None:
    server.add(completion("azure ok"))
    client = OpenAIClient.azure(
        server.url, deployment="gpt4o", api_version="2024-10-21", api_key="az-key", retry=FAST
    )
    assert run_async(lambda: complete(client)).text == "azure ok"
    request = server.requests[0]
    assert request.path == "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == "az-key" and "authorization" not in request.headers


# -- a real server, when one is given ------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("PENGUIFLOW_OPENAI_BASE_URL"),
    reason="set PENGUIFLOW_OPENAI_BASE_URL and PENGUIFLOW_OPENAI_MODEL to use a real server",
)
def test_against_a_real_openai_compatible_server() -> None:
    client = OpenAIClient(
        os.environ["PENGUIFLOW_OPENAI_MODEL"],
        base_url=os.environ["PENGUIFLOW_OPENAI_BASE_URL"],
        api_key=os.environ.get("PENGUIFLOW_OPENAI_API_KEY"),
    )
    messages = [{"role": "user", "content": "Answer 42 with confidence 1."}]
    reply = run_async(
        lambda: complete(client, messages=messages, response_format=Answer), timeout=120
    )
    assert Answer.model_validate_json(reply.text)


def test_retry_logs_never_show_the_secret(
    server: ScriptedHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.add(ScriptedResponse(status=500, body={"error": {"message": "key sk-live-999 broke"}}))
    server.add(completion("ok"))
    with caplog.at_level("DEBUG"):
        run_async(lambda: complete(client_for(server, api_key="sk-live-999")))
    assert "retry 1 of 2" in caplog.text and "answered 500" in caplog.text
    assert "sk-live-999" not in caplog.text
