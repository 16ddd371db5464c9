"""The provider-independent toolkit of penguiflow.llm: retries, SSE, pricing, profiles,
reply validation, credentials, and ProviderClient with a fake codec and transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow.llm import (
    LLMConfigurationError,
    LLMHTTPError,
    LLMMessage,
    LLMReplyError,
    LLMUsage,
    ModelPrice,
    ModelProfile,
    PricingTable,
    ProfileRegistry,
    ProviderClient,
    ProviderReply,
    ProviderRequest,
    RetryPolicy,
    SchemaMode,
    SSEEvent,
    SSEParser,
    StreamDelta,
    extract_json,
    iter_sse,
    parse_retry_after,
    resolve_credential,
    validate_reply,
)


class Point(BaseModel):
    x: int
    y: int


def test_retry_policy_backs_off_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=3, base_delay_s=1.0, max_delay_s=3.0, jitter=0.5)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 3.0)):
        delay = policy.delay_s(attempt)
        assert delay is not None and ceiling * 0.5 <= delay <= ceiling
    assert policy.delay_s(4) is None
    assert policy.delay_s(1, retry_after_s=7.0) == 7.0
    assert policy.delay_s(1, retry_after_s=120.0) is None  # beyond max_retry_after_s
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_sse_parser_handles_names_multiline_comments_and_a_missing_final_blank() -> None:
    parser = SSEParser()
    lines = [": keep-alive", "event: delta", "data: a", "data: b", "", "data: last"]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert events == [SSEEvent(event="delta", data="a\nb")]
    assert parser.flush() == SSEEvent(event="message", data="last")


def test_pricing_longest_prefix_and_no_guessing() -> None:
    table = PricingTable({"gpt-4o": (2.5, 10.0), "gpt-4o-mini": ModelPrice(0.15, 0.6)})
    usage = LLMUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert table.cost("gpt-4o-mini-2024", usage) == pytest.approx(0.75)
    assert table.cost("gpt-4o-2024", usage) == pytest.approx(12.5)
    assert table.cost("llama", usage) is None and "llama" not in table
    with pytest.raises(ValueError, match=">= 0"):
        ModelPrice(-1, 0)


def test_profiles_resolve_by_name_prefix_or_default() -> None:
    registry = ProfileRegistry(
        [ModelProfile("a", prefixes=("m-",)), ModelProfile("b", schema_modes=("prompt",))],
        default="b",
    )
    assert registry.resolve("m-large").name == "a"
    assert registry.resolve("other").name == "b"
    with pytest.raises(
        LLMConfigurationError, match="unknown model profile 'z'; known profiles: a, b"
    ):
        registry.resolve("m-large", "z")
    with pytest.raises(LLMConfigurationError, match="schema_modes"):
        ModelProfile("bad", schema_modes=("xml",))  # type: ignore[arg-type]


def test_extract_and_validate_replies() -> None:
    assert extract_json('```json\n{"x": 1, "y": 2}\n```') == '{"x": 1, "y": 2}'
    assert extract_json('Here it is: {"x": 1, "y": 2} hope it helps') == '{"x": 1, "y": 2}'
    text, errors = validate_reply('{"x": 1}', Point)
    assert errors == ["y: Field required"]
    text, errors = validate_reply('{"x": 1, "y": 2}', Point)
    assert errors == [] and Point.model_validate_json(text) == Point(x=1, y=2)
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "n": {"enum": [1, 2]},
        },
        "required": ["tags"],
        "additionalProperties": False,
    }
    _, errors = validate_reply('{"tags": ["a", 3], "n": 5, "extra": true}', schema)
    assert errors == ["$.tags[1]: expected string, got integer", "$.n: must be one of [1, 2]",
                      "$.extra: unexpected field"]  # fmt: skip
    _, errors = validate_reply("not json", schema)
    assert errors[0].startswith("not valid JSON")
    _, errors = validate_reply("true", {"type": "integer"})
    assert errors == ["$: expected integer, got boolean"]


def test_credentials_order_and_secrecy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PF_TEST_KEY", "env-secret")
    from_env = resolve_credential(
        api_key=None, token_provider=None, env_var="PF_TEST_KEY", required=True, provider_name="X"
    )
    assert from_env.source == "environment variable PF_TEST_KEY" and "env-secret" not in repr(
        from_env
    )
    provided = resolve_credential(
        api_key=None,
        token_provider=lambda force_refresh: "p",
        env_var="PF_TEST_KEY",
        required=True,
        provider_name="X",
    )
    assert provided.source == "token provider" and provided.refreshable
    monkeypatch.delenv("PF_TEST_KEY")
    with pytest.raises(LLMConfigurationError, match=r"no credentials.*PF_TEST_KEY"):
        resolve_credential(
            api_key=None,
            token_provider=None,
            env_var="PF_TEST_KEY",
            required=True,
            provider_name="X",
        )


# -- ProviderClient with a fake wire format ----------------------------------------------------


class FakeCodec:
    name = "Fake"

    def build_request(self, **kwargs: Any) -> ProviderRequest:
        messages: list[LLMMessage] = kwargs["messages"]
        return ProviderRequest("/x", {"mode": kwargs["mode"], "n": len(messages)})

    def parse_reply(self, body: Any) -> ProviderReply:
        return ProviderReply(text=body["text"], usage=LLMUsage(input_tokens=1, output_tokens=1))

    def parse_event(self, event: SSEEvent) -> StreamDelta | None:
        data = json.loads(event.data)
        return StreamDelta(text=data.get("t", ""), done=data.get("done", False))

    def rejects_mode(self, error: LLMHTTPError, mode: SchemaMode) -> bool:
        return error.status == 400 and "mode" in str(error)


class FakeTransport:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.bodies: list[Mapping[str, Any]] = []

    async def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        self.bodies.append(body)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @asynccontextmanager
    async def post_stream(
        self, path: str, body: Mapping[str, Any]
    ) -> AsyncIterator[AsyncIterator[str]]:
        self.bodies.append(body)
        lines: list[str] = self.answers.pop(0)

        async def gen() -> AsyncIterator[str]:
            for line in lines:
                yield line

        yield gen()

    async def aclose(self) -> None:
        return None


def client(answers: list[Any], **options: Any) -> tuple[ProviderClient, FakeTransport]:
    transport = FakeTransport(answers)
    return (
        ProviderClient(
            model="m",
            codec=FakeCodec(),
            transport=transport,
            profile=ModelProfile("p"),
            retry=RetryPolicy(max_retries=1, base_delay_s=0.001),
            **options,
        ),
        transport,
    )


async def test_modes_step_down_and_repairs_count_usage() -> None:
    llm, transport = client(
        [
            LLMHTTPError("mode json_schema unsupported", status=400),
            {"text": '{"x": 1}'},
            {"text": '{"x": 1, "y": 2}'},
        ]
    )
    reply = await llm.complete(messages=[{"role": "user", "content": "p"}], response_format=Point)
    assert [b["mode"] for b in transport.bodies] == ["json_schema", "json_object", "json_object"]
    assert transport.bodies[2]["n"] == 3  # the failed reply and the repair request were added
    assert reply.usage == LLMUsage(input_tokens=2, output_tokens=2)


async def test_every_mode_refused_and_never_valid() -> None:
    refusal = LLMHTTPError("mode refused", status=400)
    llm, _ = client([refusal, refusal, refusal])
    with pytest.raises(LLMHTTPError, match="refused every structured-output mode"):
        await llm.complete(messages=[{"role": "user", "content": "p"}], response_format=Point)
    llm, _ = client([{"text": "no"}], max_repairs=0)
    with pytest.raises(LLMReplyError, match="after 1 attempt"):
        await llm.complete(messages=[{"role": "user", "content": "p"}], response_format=Point)


async def test_stream_without_an_end_event_is_an_error() -> None:
    llm, _ = client(
        [['data: {"t": "par"}', "", 'data: {"t": "tial"}', ""]],
    )
    from penguiflow.llm import LLMStreamError

    with pytest.raises(LLMStreamError, match="broke after 7 characters") as caught:
        await llm.complete(messages=[{"role": "user", "content": "p"}], stream=True)
    assert caught.value.partial == "partial"
    events = [e async for e in iter_sse(_lines(["data: 1", "", "data: 2"]))]
    assert [e.data for e in events] == ["1", "2"]


async def _lines(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


def test_adapter_helpers_name_the_client_and_the_fix() -> None:
    from penguiflow.llm import check_request_options, model_driver, require_model

    with pytest.raises(LLMConfigurationError, match=r"X needs a model name, e\.g\. 'm-1'"):
        require_model("X", "", "m-1")
    check_request_options("X", {"temperature": 0, "extra_body": {}}, ["temperature"])
    with pytest.raises(LLMConfigurationError, match=r"unknown option\(s\) \['temprature'\]"):
        check_request_options("X", {"temprature": 0}, ["temperature"])
    built: list[tuple[str, dict[str, Any]]] = []
    driver = model_driver(lambda model, **options: built.append((model, options)), "m-1")
    driver("x", model="m-2", seed=1)
    assert built == [("m-2", {"seed": 1})]
    with pytest.raises(LLMConfigurationError, match="needs model="):
        driver("x")
