"""SSE/WebSocket framing, stream_flow and emit_stream_events (spec §1.24)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from penguiflow.core import create
from penguiflow.node import Node, NodePolicy
from penguiflow.streaming import (
    chunk_to_ws_json,
    emit_stream_events,
    format_sse_event,
    stream_flow,
)
from penguiflow.types import FinalAnswer, Message, StreamChunk


def test_sse_frames() -> None:
    chunk = StreamChunk(stream_id="s", seq=3, text="hello")
    assert format_sse_event(chunk) == "event: chunk\nid: 3\ndata: hello\n\n"
    done = StreamChunk(stream_id="s", seq=4, text="", done=True, meta={"ünï": 1})
    assert format_sse_event(done, retry_ms=500) == (
        'event: done\nid: 4\ndata: \ndata: {"ünï": 1}\nretry: 500\n\n'
    )
    assert format_sse_event(chunk, event_name="token").startswith("event: token\n")


def test_ws_json() -> None:
    chunk = StreamChunk(stream_id="s", seq=0, text="é", meta={"a": 1})
    body = json.loads(chunk_to_ws_json(chunk, extra={"channel": "x"}))
    assert body == {
        "stream_id": "s",
        "seq": 0,
        "text": "é",
        "done": False,
        "meta": {"a": 1},
        "channel": "x",
    }
    assert "é" in chunk_to_ws_json(chunk)


async def test_stream_flow_yields_chunks_until_done(msg_factory: Any) -> None:
    async def writer(message: Message, ctx: Any) -> Message:
        for i in range(3):
            await ctx.emit_chunk(parent=message, text=str(i), done=i == 2)
        return message.model_copy(update={"payload": FinalAnswer(text="final")})

    flow = create(Node(writer, name="writer", policy=NodePolicy(validate="none")).to())
    flow.run()
    texts = [c.text async for c in stream_flow(flow, msg_factory("q"), timeout=1)]
    assert texts == ["0", "1", "2"]
    # The first call stopped at `done`, leaving that trace's final answer queued: a second
    # call reads it first, and a non-chunk payload ends the stream.
    items = [i async for i in stream_flow(flow, msg_factory("q"), include_final=True)]
    assert items == [FinalAnswer(text="final")]
    more = [i async for i in stream_flow(flow, msg_factory("q"), include_final=True)]
    await flow.stop()
    assert [getattr(i, "text", None) for i in more] == ["0", "1", "2", "final"]


async def test_stream_flow_with_duck_typed_flow() -> None:
    class FakeFlow:
        def __init__(self) -> None:
            self.items: list[Any] = [StreamChunk(stream_id="s", seq=0, text="a"), "final"]
            self.emitted: list[Any] = []

        async def emit(self, msg: Any, to: Any = None) -> None:
            self.emitted.append((msg, to))

        async def fetch(self) -> Any:
            return self.items.pop(0)

    fake = FakeFlow()
    got = [item async for item in stream_flow(fake, "parent", to="x")]  # type: ignore[arg-type]
    assert [getattr(g, "text", g) for g in got] == ["a", "final"]
    assert fake.emitted == [("parent", "x")]


async def test_stream_flow_timeout() -> None:
    class Silent:
        async def emit(self, msg: Any, to: Any = None) -> None:
            return None

        async def fetch(self) -> Any:
            await asyncio.sleep(5)

    with pytest.raises(asyncio.TimeoutError):
        async for _ in stream_flow(Silent(), "p", timeout=0.01):  # type: ignore[arg-type]
            pass


class RecordingCtx:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def emit_chunk(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


async def test_emit_stream_events_closes_the_stream(msg_factory: Any) -> None:
    ctx = RecordingCtx()
    parent = msg_factory("p")
    await emit_stream_events(["a", "b"], ctx, parent, final_meta={"end": True})
    assert [c["text"] for c in ctx.calls] == ["a", "b", ""]
    assert ctx.calls[-1] == {
        "parent": parent,
        "text": "",
        "done": True,
        "meta": {"end": True},
        "to": None,
    }


async def test_emit_stream_events_async_source_with_adapter(msg_factory: Any) -> None:
    async def source() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    ctx = RecordingCtx()
    await emit_stream_events(
        source(), ctx, msg_factory("p"), adapter=lambda i: (f"#{i}", i == 2, {"i": i})
    )
    assert [(c["text"], c["done"], c["meta"]) for c in ctx.calls] == [
        ("#0", False, {"i": 0}),
        ("#1", False, {"i": 1}),
        ("#2", True, {"i": 2}),
    ]
