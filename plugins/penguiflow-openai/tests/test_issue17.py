"""Finish reasons and truncation, schema refusals, cached tokens, strict schemas and driver
URLs, against a real HTTP server on 127.0.0.1 speaking Chat Completions.

Error bodies are the providers' own, quoted from their answers as reported upstream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai_server import completion
from penguiflow_llm_http import RetryPolicy
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from penguiflow_openai import OpenAIClient, strict_reply, strict_schema
from pydantic import BaseModel

from penguiflow.llm import (
    LLMConfigurationError,
    LLMHTTPError,
    LLMReplyError,
    LLMTruncationError,
)
from penguiflow.plugins import resolve_driver
from penguiflow.testing import run_async

FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.02)
USER = [{"role": "user", "content": "hi"}]


class Answer(BaseModel):
    answer: str
    confidence: float


class Loose(BaseModel):
    """No extra="forbid" and an optional field: not strict as it is."""

    title: str
    note: str = "none"
    tags: list[str] = []


def client_for(server: ScriptedHTTPServer, **options: Any) -> OpenAIClient:
    options.setdefault("retry", FAST)
    return OpenAIClient(options.pop("model", "gpt-4o-mini"), base_url=server.url, **options)


async def complete(client: OpenAIClient, **kwargs: Any) -> Any:
    try:
        return await client.complete(**{"messages": USER, **kwargs})
    finally:
        await client.aclose()


def cut(text: str, **options: Any) -> ScriptedResponse:
    response = completion(text, **options)
    assert isinstance(response.body, dict)
    response.body["choices"][0]["finish_reason"] = "length"
    return response


# -- item 8: finish reason, truncation -----------------------------------------------------------


def test_finish_reason_is_reported(server: ScriptedHTTPServer) -> None:
    server.add(completion("fine"), cut("a long story that stops"))
    assert run_async(lambda: complete(client_for(server))).finish_reason == "stop"
    free_text = run_async(lambda: complete(client_for(server)))
    assert free_text.finish_reason == "length" and free_text.text == "a long story that stops"


def test_a_structured_reply_cut_by_max_tokens_raises_without_repairs(
    server: ScriptedHTTPServer,
) -> None:
    server.add(cut('{"answer": "the first part of a long ans'))
    server.add(completion('{"answer": "never asked for", "confidence": 1}'))
    client = client_for(server, max_tokens=16)
    with pytest.raises(LLMTruncationError, match=r"max_tokens limit \(16\)") as caught:
        run_async(lambda: complete(client, response_format=Answer))
    assert isinstance(caught.value, LLMReplyError)
    assert caught.value.max_tokens == 16 and caught.value.text.startswith('{"answer"')
    assert "raise max_tokens" in str(caught.value) and "max_repairs" not in str(caught.value)
    assert len(server.requests) == 1  # no repair round


def test_a_streamed_reply_cut_by_max_tokens_raises_too(server: ScriptedHTTPServer) -> None:
    events: list[dict[str, Any] | str] = [
        {"model": "m", "choices": [{"delta": {"content": '{"answer": "x'}}]},
        {"model": "m", "choices": [{"delta": {}, "finish_reason": "length"}]},
        "[DONE]",
    ]
    server.add(ScriptedResponse.sse(events))
    with pytest.raises(LLMTruncationError, match="max_tokens"):
        run_async(lambda: complete(client_for(server), response_format=Answer, stream=True))
    assert len(server.requests) == 1


# -- item 7: schema refusals ---------------------------------------------------------------------

#: llama.cpp's server (ggml-org/llama.cpp#19716): a schema its grammar converter cannot take.
LLAMA_CPP_400 = {
    "error": {
        "code": 400,
        "message": 'JSON schema conversion failed:\nUnrecognized schema: {"description":'
        '"Value for add/replace/test operations"}',
        "type": "invalid_request_error",
    }
}
#: llama.cpp builds without json_schema answer 500 (ikawrakow/ik_llama.cpp#778).
LLAMA_CPP_500 = {
    "error": {
        "code": 500,
        "message": 'response_format type must be one of "text" or "json_object", but got: '
        "json_schema",
        "type": "server_error",
    }
}
#: vLLM (vllm-project/vllm#16321).
VLLM_400 = {
    "object": "error",
    "message": "The provided JSON schema contains features not supported by xgrammar.",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}
#: OpenAI, a schema strict mode refuses.
OPENAI_400 = {
    "error": {
        "message": "Invalid schema for response_format 'Answer': In context=(), "
        "'additionalProperties' is required to be supplied and to be false.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }
}


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, LLAMA_CPP_400), (500, LLAMA_CPP_500), (400, VLLM_400), (400, OPENAI_400)],
    ids=["llama.cpp-400", "llama.cpp-500", "vllm", "openai"],
)
def test_real_refusal_wordings_step_down_for_the_request(
    server: ScriptedHTTPServer, status: int, body: dict[str, Any]
) -> None:
    server.add(ScriptedResponse(status=status, body=body))
    server.add(completion('{"answer": "a", "confidence": 1}'))
    reply = run_async(lambda: complete(client_for(server), response_format=Answer))
    assert json.loads(reply.text) == {"answer": "a", "confidence": 1}
    modes = [r.json()["response_format"]["type"] for r in server.requests]
    assert modes == ["json_schema", "json_object"]  # the 500 is not retried either


def test_a_refusal_is_remembered_per_schema_not_per_client(server: ScriptedHTTPServer) -> None:
    other = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    server.add(ScriptedResponse(status=400, body=LLAMA_CPP_400))
    server.add(completion('{"answer": "a", "confidence": 1}'))
    server.add(completion('{"answer": "b", "confidence": 1}'))
    server.add(completion('{"n": 3}'))
    client = client_for(server)

    async def scenario() -> None:
        await client.complete(messages=USER, response_format=Answer)
        await client.complete(messages=USER, response_format=Answer)
        await client.complete(messages=USER, response_format=other)
        await client.aclose()

    run_async(scenario)
    modes = [r.json()["response_format"]["type"] for r in server.requests]
    assert modes == ["json_schema", "json_object", "json_object", "json_schema"]
    assert client.schema_mode_for(Answer) == "json_object"
    assert client.schema_mode_for(other) == "json_schema"


def test_errors_that_are_not_refusals_are_raised_as_they_are(server: ScriptedHTTPServer) -> None:
    missing = {
        "error": {
            "message": "The model `gpt-5-nope` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    server.add(ScriptedResponse(status=404, body=missing))
    with pytest.raises(LLMHTTPError, match="does not exist"):
        run_async(lambda: complete(client_for(server), response_format=Answer))
    server.add(*(ScriptedResponse(status=500, body={"error": {"message": "boom"}}),) * 3)
    with pytest.raises(LLMHTTPError, match="answered 500"):
        run_async(lambda: complete(client_for(server), response_format=Answer))
    assert len(server.requests) == 1 + 3  # a plain 500 is retried, never a mode refusal


# -- item 9: cached tokens -----------------------------------------------------------------------


def test_cached_prompt_tokens_are_counted_and_priced_at_the_cache_rate(
    server: ScriptedHTTPServer,
) -> None:
    response = completion("ok", usage=(2000, 100))
    assert isinstance(response.body, dict)
    response.body["usage"]["prompt_tokens_details"] = {"cached_tokens": 1536}
    server.add(response)
    reply = run_async(lambda: complete(client_for(server)))
    assert reply.usage.input_tokens == 2000 and reply.usage.cache_read_input_tokens == 1536
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million tokens
    expected = (464 * 0.15 + 1536 * 0.075 + 100 * 0.60) / 1e6
    assert reply.cost_usd == pytest.approx(expected)


# -- item 10: strict schemas ---------------------------------------------------------------------


def test_a_loose_model_is_sent_strict_and_the_reply_mapped_back(server: ScriptedHTTPServer) -> None:
    server.add(completion('{"title": "t", "note": null, "tags": ["a"]}'))
    reply = run_async(lambda: complete(client_for(server), response_format=Loose))
    sent = server.requests[0].json()["response_format"]["json_schema"]
    assert sent["strict"] is True
    schema = sent["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["title", "note", "tags"]
    assert schema["properties"]["note"]["type"] == ["string", "null"]
    assert "default" not in json.dumps(schema)
    # the null the strict schema forced stands for "left out": the default applies
    assert Loose.model_validate_json(reply.text) == Loose(title="t", tags=["a"])
    assert json.loads(reply.text)["note"] == "none"


class Inner(BaseModel):
    value: int
    unit: str | None = None


class Outer(BaseModel):
    items: list[Inner]
    best: Inner | None = None


def test_strict_rewrite_of_nested_models_keeps_real_nulls() -> None:
    original = Outer.model_json_schema()
    strict = strict_schema(original)
    assert strict is not None
    inner = strict["$defs"]["Inner"]
    assert inner["required"] == ["value", "unit"] and inner["additionalProperties"] is False
    reply = '{"items": [{"value": 1, "unit": null}], "best": null}'
    back = json.loads(strict_reply(reply, original))
    # `unit` and `best` allow null themselves: a null is a real value, kept
    assert back == {"items": [{"value": 1, "unit": None}], "best": None}
    assert strict_schema({"type": "object", "additionalProperties": {"type": "integer"}}) is None
    assert strict_schema({"type": "array", "items": {"type": "string"}}) is None


# -- item 11: driver URLs ------------------------------------------------------------------------


def test_a_driver_url_sets_base_url_and_model(server: ScriptedHTTPServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    client = resolve_driver("llm_adapter", f"openai://127.0.0.1:{port}/v1?model=qwen2.5")
    assert isinstance(client, OpenAIClient) and client.model == "qwen2.5"
    assert client.base_url == f"http://127.0.0.1:{port}/v1"  # loopback: http
    server.add(completion("via url"))
    assert run_async(lambda: complete(client)).text == "via url"
    assert server.requests[0].path == "/v1/chat/completions"
    remote = resolve_driver("llm_adapter", "openai://llm.example.com/v1", model="m", api_key="k")
    assert remote.base_url == "https://llm.example.com/v1"
    plain = resolve_driver("llm_adapter", "openai://gw.internal:8000/v1?scheme=http&model=m")
    assert plain.base_url == "http://gw.internal:8000/v1"


def test_driver_url_mistakes_are_named() -> None:
    with pytest.raises(LLMConfigurationError, match=r"unknown parameter\(s\) \['modle'\]"):
        resolve_driver("llm_adapter", "openai://127.0.0.1:9/v1?modle=x")
    with pytest.raises(LLMConfigurationError, match="says model='a' but model='b'"):
        resolve_driver("llm_adapter", "openai://127.0.0.1:9/v1?model=a", model="b")
    with pytest.raises(LLMConfigurationError, match=r"needs model=.*\?model= in its URL"):
        resolve_driver("llm_adapter", "openai://127.0.0.1:9/v1")
