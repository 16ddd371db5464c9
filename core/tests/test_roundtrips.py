"""Trace-scoped round trips (spec §1.7) and chunk streaming through the runtime (§1.8)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow.core import create
from penguiflow.node import Node, NodePolicy
from penguiflow.types import Headers, Message, StreamChunk


def node(name: str, fn: Any) -> Node:
    return Node(fn, name=name, policy=NodePolicy(validate="none"))


async def jitter(message: Message, ctx: Any) -> Message:
    await asyncio.sleep(random.random() / 500)
    return message.model_copy(update={"payload": f"{message.payload}!"})


async def test_roundtrip_requires_running(msg_factory: Any) -> None:
    flow = create(node("j", jitter).to())
    with pytest.raises(RuntimeError, match="PenguiFlow is not running"):
        await flow.emit(msg_factory(1), trace_id="t")


async def test_roundtrip_stamps_trace_and_returns_result(msg_factory: Any) -> None:
    flow = create(node("j", jitter).to())
    flow.run()
    await flow.emit(msg_factory("a"), trace_id="T1")
    result = await flow.fetch(trace_id="T1")
    assert result.payload == "a!" and result.trace_id == "T1"
    with pytest.raises(RuntimeError, match="not supported once trace-scoped fetching"):
        await flow.fetch(from_=object())
    with pytest.raises(RuntimeError, match="does not support from_ filtering"):
        await flow.fetch(from_=object(), trace_id="T1")
    await flow.stop()


async def test_raw_results_are_routed_to_their_trace(msg_factory: Any) -> None:
    async def to_text(message: Message, ctx: Any) -> str:
        await asyncio.sleep(random.random() / 500)
        return f"text:{message.payload}"

    flow = create(node("to_text", to_text).to())
    flow.run()

    async def one(i: int) -> str:
        await flow.emit(msg_factory(i), trace_id=f"t{i}")
        result: str = await flow.fetch(trace_id=f"t{i}")
        return result

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == [f"text:{i}" for i in range(20)]
    assert flow._traces.states == {}
    await flow.stop()


@settings(max_examples=15, deadline=None)
@given(count=st.integers(min_value=1, max_value=30), maxsize=st.integers(min_value=1, max_value=4))
def test_concurrent_roundtrips_never_cross(count: int, maxsize: int) -> None:
    async def scenario() -> None:
        flow = create(node("a", jitter).to(node("b", jitter)), queue_maxsize=maxsize)
        flow.run()

        async def one(i: int) -> tuple[int, Any]:
            msg = Message(payload=i, headers=Headers(tenant="t"))
            await flow.emit(msg, trace_id=f"trace-{i}")
            return i, await flow.fetch(trace_id=f"trace-{i}")

        try:
            results = await asyncio.gather(*(one(i) for i in range(count)))
        finally:
            await flow.stop()
        for i, result in results:
            assert result.trace_id == f"trace-{i}" and result.payload == f"{i}!!"

    asyncio.run(scenario())


async def test_same_trace_roundtrips_are_serialized(msg_factory: Any) -> None:
    order: list[str] = []

    async def record(message: Message, ctx: Any) -> Message:
        order.append(f"in:{message.payload}")
        await asyncio.sleep(0.01)
        return message

    flow = create(node("rec", record).to())
    flow.run()

    async def trip(label: str) -> str:
        await flow.emit(msg_factory(label), trace_id="same")
        result = await flow.fetch(trace_id="same")
        order.append(f"out:{result.payload}")
        return str(result.payload)

    results = await asyncio.gather(trip("first"), trip("second"))
    await flow.stop()
    assert results == ["first", "second"]
    assert order == ["in:first", "out:first", "in:second", "out:second"]


async def test_plain_fetch_reads_unsubscribed_results(msg_factory: Any) -> None:
    flow = create(node("j", jitter).to())
    flow.run()
    await flow.emit(msg_factory("scoped"), trace_id="S")
    await flow.emit(msg_factory("plain"))
    assert (await flow.fetch(trace_id="S")).payload == "scoped!"
    assert (await flow.fetch()).payload == "plain!"
    await flow.stop()


async def test_unfetched_results_survive_stop(msg_factory: Any) -> None:
    flow = create(node("j", jitter).to())
    flow.run()
    await flow.emit(msg_factory("kept"), trace_id="K")
    await asyncio.sleep(0.02)
    await flow.stop()
    # The dispatcher had taken it from Rookery; stop() hands it back instead of dropping it.
    assert (await flow.fetch()).payload == "kept!"


async def test_cancel_releases_a_pending_roundtrip(msg_factory: Any) -> None:
    async def stuck(message: Message, ctx: Any) -> Message:
        await asyncio.Event().wait()  # never finishes on its own
        return message

    flow = create(node("stuck", stuck).to())
    flow.run()
    await flow.emit(msg_factory(1), trace_id="C")
    assert await flow.cancel("C") is True
    # The lock was released: a new round trip on the id does not wait for the first, which
    # would never end. The bound only turns a hang into a failure; no speed is asserted.
    await asyncio.wait_for(flow.emit(msg_factory(2), trace_id="C"), 30)
    await flow.cancel("C")
    await flow.stop()


async def test_chunks_are_numbered_and_reset_after_done(msg_factory: Any) -> None:
    async def streamer(message: Message, ctx: Any) -> None:
        for i, word in enumerate(["a", "b", "c"]):
            await ctx.emit_chunk(parent=message, text=word, done=i == 2)
        await ctx.emit_chunk(parent=message, text="again")
        await ctx.emit_chunk(parent=message, text="other", stream_id="side", meta={"k": 1})

    flow = create(node("streamer", streamer).to())
    flow.run()
    parent = msg_factory("p")
    await flow.emit(parent)
    chunks: list[StreamChunk] = [(await flow.fetch()).payload for _ in range(5)]
    await flow.stop()
    assert [(c.stream_id, c.seq, c.text, c.done) for c in chunks] == [
        (parent.trace_id, 0, "a", False),
        (parent.trace_id, 1, "b", False),
        (parent.trace_id, 2, "c", True),
        (parent.trace_id, 0, "again", False),
        ("side", 0, "other", False),
    ]
    assert chunks[4].meta == {"k": 1}


async def test_second_chunk_waits_for_consumer_capacity(msg_factory: Any) -> None:
    emitted: list[int] = []

    async def streamer(message: Message, ctx: Any) -> None:
        for i in range(3):
            await ctx.emit_chunk(parent=message, text=str(i))
            emitted.append(i)

    flow = create(node("streamer", streamer).to(), queue_maxsize=1)
    flow.run()
    await flow.emit(msg_factory("p"))
    await asyncio.sleep(0.02)
    assert emitted == [0]  # the second chunk waits although the edge queue has room
    first = await flow.fetch()
    await asyncio.sleep(0.02)
    assert first.payload.seq == 0 and emitted == [0, 1]
    await flow.fetch()
    await flow.fetch()
    await flow.stop()


@settings(max_examples=10, deadline=None)
@given(lengths=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6))
def test_chunk_sequences_stay_ordered_across_interleaved_traces(lengths: list[int]) -> None:
    async def streamer(message: Message, ctx: Any) -> None:
        for i in range(message.payload):
            await asyncio.sleep(random.random() / 1000)
            await ctx.emit_chunk(parent=message, text=str(i), done=i == message.payload - 1)

    async def scenario() -> None:
        workers = [node(f"s{i}", streamer) for i in range(3)]
        flow = create(*(w.to() for w in workers), queue_maxsize=2)
        flow.run()
        parents = [Message(payload=n, headers=Headers(tenant="t")) for n in lengths]
        for parent, worker in zip(parents, workers * len(parents), strict=False):
            await flow.emit(parent, to=worker)
        seen: dict[str, list[int]] = {}
        for _ in range(sum(lengths)):
            chunk = (await asyncio.wait_for(flow.fetch(), 2)).payload
            seen.setdefault(chunk.stream_id, []).append(chunk.seq)
        await flow.stop()
        for parent in parents:
            assert seen[parent.trace_id] == list(range(parent.payload))

    asyncio.run(scenario())
