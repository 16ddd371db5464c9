"""ProviderClient with a fake wire format and an in-memory transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from penguiflow_llm_http import (
    ModelProfile,
    ProviderClient,
    ProviderReply,
    ProviderRequest,
    RetryPolicy,
    SchemaMode,
    SSEEvent,
    StreamDelta,
)
from pydantic import BaseModel

from penguiflow.llm import (
    JSONLLMClient,
    LLMConfigurationError,
    LLMHTTPError,
    LLMMessage,
    LLMReplyError,
    LLMResponse,
    LLMStreamError,
    LLMUsage,
)
from penguiflow.testing import run_async

USER = [{"role": "user", "content": "p"}]


class Point(BaseModel):
    x: int
    y: int


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
        self.closed = 0

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
        self.closed += 1


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


def complete(llm: ProviderClient, **options: Any) -> LLMResponse:
    return run_async(lambda: llm.complete(messages=USER, **options))


def test_a_provider_client_is_a_json_llm_client() -> None:
    llm, _ = client([])
    assert isinstance(llm, JSONLLMClient)
    assert repr(llm) == "ProviderClient(model='m', profile='p')"
    assert llm.schema_mode == "json_schema"


def test_modes_step_down_and_repairs_count_usage() -> None:
    llm, transport = client(
        [
            LLMHTTPError("mode json_schema unsupported", status=400),
            {"text": '{"x": 1}'},
            {"text": '{"x": 1, "y": 2}'},
        ]
    )
    reply = complete(llm, response_format=Point)
    assert [b["mode"] for b in transport.bodies] == ["json_schema", "json_object", "json_object"]
    assert transport.bodies[2]["n"] == 3  # the failed reply and the repair request were added
    assert reply.usage == LLMUsage(input_tokens=2, output_tokens=2)
    # the refused mode stays dropped for this model and schema, and only for them
    assert llm.schema_mode_for(Point) == "json_object"
    assert llm.schema_mode == "json_schema"
    assert llm.schema_mode_for({"type": "object"}) == "json_schema"


def test_every_mode_refused_and_never_valid() -> None:
    refusal = LLMHTTPError("mode refused", status=400)
    llm, _ = client([refusal, refusal, refusal])
    with pytest.raises(LLMHTTPError, match="refused every structured-output mode"):
        complete(llm, response_format=Point)
    llm, _ = client([{"text": "no"}], max_repairs=0)
    with pytest.raises(LLMReplyError, match="after 1 attempt") as caught:
        complete(llm, response_format=Point)
    assert caught.value.text == "no" and "Invalid JSON" in caught.value.errors[0]


def test_server_errors_are_retried_and_unreadable_bodies_named() -> None:
    llm, transport = client([LLMHTTPError("busy", status=503), {"text": "ok"}])
    assert complete(llm).text == "ok" and len(transport.bodies) == 2
    llm, _ = client([{"nothing": 1}, {"nothing": 2}])
    with pytest.raises(LLMHTTPError, match=r"Fake answered 200 with a body it cannot read"):
        complete(llm)


def test_an_unprintable_error_does_not_break_the_retry_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unprintable(LLMHTTPError):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    llm, _ = client([Unprintable("x", status=503), {"text": "ok"}])
    with caplog.at_level("INFO", logger="penguiflow.llm"):
        assert complete(llm).text == "ok"
    assert "Unprintable (unprintable: its __str__ raised); retry 1 of 1" in caplog.text


def test_stream_without_an_end_event_is_an_error() -> None:
    llm, _ = client([['data: {"t": "par"}', "", 'data: {"t": "tial"}', ""]])
    with pytest.raises(LLMStreamError, match="broke after 7 characters") as caught:
        complete(llm, stream=True)
    assert caught.value.partial == "partial"


def test_streamed_pieces_reach_the_callback_and_end_with_done() -> None:
    seen: list[tuple[str, bool]] = []
    llm, _ = client([['data: {"t": "a"}', "", 'data: {"t": "b", "done": true}', ""]])
    reply = complete(llm, stream=True, on_stream_chunk=lambda p, d: seen.append((p, d)))
    assert reply.text == "ab" and seen == [("a", False), ("b", False), ("", True)]


def test_aclose_is_idempotent_and_async_with_closes() -> None:
    llm, transport = client([])

    async def scenario() -> None:
        async with llm as entered:
            assert entered is llm
        await llm.aclose()

    run_async(scenario)
    assert transport.closed == 1


def test_negative_max_repairs_is_a_configuration_error() -> None:
    with pytest.raises(LLMConfigurationError, match="max_repairs must be >= 0"):
        client([], max_repairs=-1)
