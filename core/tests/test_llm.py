"""The JSON LLM client models and the scripted client."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow.llm import (
    JSONLLMClient,
    LLMMessage,
    LLMUsage,
    ScriptedLLMClient,
    ScriptExhaustedError,
    normalize_messages,
)


class Plan(BaseModel):
    tool: str


def test_normalize_messages() -> None:
    messages = normalize_messages(
        [{"role": "user", "content": "hi"}, LLMMessage(role="system", content="s")]
    )
    assert [m.role for m in messages] == ["user", "system"]
    with pytest.raises(ValueError, match=r"messages\[1\] is not a valid chat message"):
        normalize_messages([{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match="messages is empty"):
        normalize_messages([])
    assert LLMUsage(input_tokens=2, output_tokens=3).total_tokens == 5


async def test_script_replies_in_order_and_records_calls() -> None:
    client = ScriptedLLMClient(["first", {"tool": "search"}, Plan(tool="fetch")])
    assert isinstance(client, JSONLLMClient)
    texts = [
        (await client.complete(messages=[{"role": "user", "content": str(i)}])).text
        for i in range(3)
    ]
    assert texts == ["first", '{"tool": "search"}', '{"tool":"fetch"}']
    assert [c.messages[0].content for c in client.calls] == ["0", "1", "2"]
    with pytest.raises(ScriptExhaustedError, match=r"ran out of replies after 3 call\(s\)"):
        await client.complete(messages=[{"role": "user", "content": "more"}])
    client.add("late")
    assert client.remaining == 1


async def test_exceptions_and_callables() -> None:
    async def echo_last(messages: list[LLMMessage]) -> str:
        return messages[-1].content.upper()

    client = ScriptedLLMClient(
        [TimeoutError("slow model"), echo_last, lambda msgs: {"n": len(msgs)}]
    )
    with pytest.raises(TimeoutError, match="slow model"):
        await client.complete(messages=[{"role": "user", "content": "a"}])
    assert (await client.complete(messages=[{"role": "user", "content": "b"}])).text == "B"
    assert (await client.complete(messages=[{"role": "user", "content": "c"}])).text == '{"n": 1}'


async def test_streaming_chunks_and_async_callbacks() -> None:
    seen: list[tuple[str, bool]] = []

    async def collect(piece: str, done: bool) -> None:
        seen.append((piece, done))

    client = ScriptedLLMClient(["abcdefg", ""], chunk_size=3)
    response = await client.complete(
        messages=[{"role": "user", "content": "x"}], stream=True, on_stream_chunk=collect
    )
    assert response.text == "abcdefg" and seen == [("abc", False), ("def", False), ("g", True)]
    seen.clear()
    await client.complete(
        messages=[{"role": "user", "content": "x"}], stream=True, on_stream_chunk=collect
    )
    assert seen == [("", True)]
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        ScriptedLLMClient(chunk_size=0)


async def test_unsupported_reply_type() -> None:
    client = ScriptedLLMClient([42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="is not text, a mapping, a model or an exception"):
        await client.complete(messages=[{"role": "user", "content": "x"}])


def test_driver_options_are_checked() -> None:
    from penguiflow.plugins import resolve_driver

    client: Any = resolve_driver("llm_adapter", "scripted", replies=["x"], model="m")
    assert client.model == "m" and client.remaining == 1
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['temperature'\]"):
        resolve_driver("llm_adapter", "scripted", temperature=0.1)
