"""Conformance suite for LLM adapters (the JSON LLM client protocol; native tools and images
in `_llm_tools`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from ..llm import JSONLLMClient, LLMMessage
from ._llm_tools import ToolAndImageCases
from ._support import close_quietly, run_with_resource

__all__ = ["LLMAdapterConformance"]


class _Verdict(BaseModel):
    answer: str
    confidence: float


class LLMAdapterConformance(ToolAndImageCases):
    """Subclass and implement `make_client(replies)`: a client whose model will answer the
    next calls with `replies`, in order (a loopback server speaking the provider's API, for an
    HTTP adapter).

    An adapter with native tool calling sets `supports_tools = True`, one that takes images
    `supports_images = True`, and implements the hooks `ToolAndImageCases` lists
    (`make_tool_client`, `sent_requests`, `wire_tool`, ...); with a flag False (the default)
    those cases skip and say why."""

    async def make_client(self, replies: list[str]) -> JSONLLMClient:
        raise NotImplementedError("implement make_client(replies) for your adapter")

    async def close_client(self, client: JSONLLMClient) -> None:
        await close_quietly(client)

    def _run(self, replies: list[str], scenario: Any) -> None:
        run_with_resource(lambda: self.make_client(replies), self.close_client, scenario)

    def test_satisfies_the_protocol_and_returns_text(self) -> None:
        async def scenario(client: JSONLLMClient) -> None:
            assert isinstance(client, JSONLLMClient)
            response = await client.complete(
                messages=[
                    LLMMessage(role="system", content="Be brief."),
                    LLMMessage(role="user", content="Say hello."),
                    LLMMessage(role="assistant", content="Hello."),
                    LLMMessage(role="tool", content='{"ok": true}', tool_call_id="call-1"),
                    LLMMessage(role="user", content="Again."),
                ]
            )
            assert response.text == "hello there"

        self._run(["hello there"], scenario)

    def test_accepts_plain_dict_messages(self) -> None:
        async def scenario(client: JSONLLMClient) -> None:
            response = await client.complete(messages=[{"role": "user", "content": "hi"}])
            assert response.text == "dict ok"

        self._run(["dict ok"], scenario)

    def test_streams_the_whole_text_in_order(self) -> None:
        text = "streamed reply with several words in it"

        async def scenario(client: JSONLLMClient) -> None:
            pieces: list[str] = []
            finished: list[bool] = []

            def collect(piece: str, done: bool) -> None:
                pieces.append(piece)
                finished.append(done)

            response = await client.complete(
                messages=[{"role": "user", "content": "stream"}],
                stream=True,
                on_stream_chunk=collect,
            )
            assert response.text == text and "".join(pieces) == text
            assert finished and finished[-1] is True

        self._run([text], scenario)

    def test_json_reply_for_a_response_format(self) -> None:
        reply = json.dumps({"answer": "42", "confidence": 0.9})

        async def scenario(client: JSONLLMClient) -> None:
            response = await client.complete(
                messages=[{"role": "user", "content": "answer as JSON"}], response_format=_Verdict
            )
            assert _Verdict.model_validate_json(response.text) == _Verdict(
                answer="42", confidence=0.9
            )

        self._run([reply], scenario)

    def test_usage_when_reported_is_non_negative(self) -> None:
        async def scenario(client: JSONLLMClient) -> None:
            response = await client.complete(messages=[{"role": "user", "content": "count"}])
            if response.usage is not None:
                assert response.usage.input_tokens >= 0 and response.usage.output_tokens >= 0
            if response.cost_usd is not None:
                assert response.cost_usd >= 0

        self._run(["counted"], scenario)

    def test_bad_messages_are_refused_before_calling_the_model(self) -> None:
        async def scenario(client: JSONLLMClient) -> None:
            with pytest.raises(ValueError, match=r"messages\[0\]"):
                await client.complete(messages=[{"role": "robot", "content": "beep"}])

        self._run(["unused"], scenario)
