"""Property tests for the runtime's invariants: FIFO and backpressure per edge, cancel isolation."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow.core import create
from penguiflow.node import Node, NodePolicy
from penguiflow.types import Headers, Message


def node(name: str, fn: Any) -> Node:
    return Node(fn, name=name, policy=NodePolicy(validate="none"))


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=60),
    maxsize=st.integers(min_value=1, max_value=5),
    depth=st.integers(min_value=1, max_value=4),
)
def test_each_edge_is_fifo_and_bounded(count: int, maxsize: int, depth: int) -> None:
    """Items leave a chain in the order they entered; no queue ever exceeds its bound."""
    peak = 0

    async def scenario() -> None:
        nonlocal peak
        flow_box: list[Any] = []

        async def hop(message: Message, ctx: Any) -> Message:
            nonlocal peak
            peak = max(peak, max(f.queue.qsize() for f in flow_box[0]._floes))
            if random.random() < 0.3:
                await asyncio.sleep(0)
            return message

        nodes = [node(f"n{i}", hop) for i in range(depth)]
        flow = create(
            *(a.to(b) for a, b in itertools.pairwise(nodes)),
            nodes[-1].to(),
            queue_maxsize=maxsize,
        )
        flow_box.append(flow)
        flow.run()

        async def produce() -> None:
            for i in range(count):
                await flow.emit(Message(payload=i, headers=Headers(tenant="t")))

        producer = asyncio.get_running_loop().create_task(produce())
        received = []
        for _ in range(count):
            if random.random() < 0.2:
                await asyncio.sleep(0.001)  # slow consumer: backpressure must hold, not drop
            received.append((await asyncio.wait_for(flow.fetch(), 2)).payload)
        await producer
        await flow.stop()
        assert received == list(range(count))
        assert flow._traces.states == {}

    asyncio.run(scenario())
    assert peak <= maxsize


@settings(max_examples=20, deadline=None)
@given(
    traces=st.integers(min_value=2, max_value=8),
    victims=st.sets(st.integers(min_value=0, max_value=7), max_size=4),
)
def test_cancelling_some_traces_never_affects_the_others(traces: int, victims: set[int]) -> None:
    victims = {v for v in victims if v < traces}

    async def scenario() -> None:
        async def slow(message: Message, ctx: Any) -> Message:
            await asyncio.sleep(random.random() / 200)
            return message

        a, b = node("a", slow), node("b", slow)
        flow = create(a.to(b), queue_maxsize=2)
        flow.run()
        messages = [Message(payload=i, headers=Headers(tenant="t")) for i in range(traces)]
        emitted = asyncio.gather(*(flow.emit(m) for m in messages))
        await asyncio.sleep(random.random() / 200)
        for v in victims:
            await flow.cancel(messages[v].trace_id)
        await emitted
        survivors = sorted(i for i in range(traces) if i not in victims)
        got = []
        for _ in survivors:
            got.append((await asyncio.wait_for(flow.fetch(), 2)).payload)
        # Nothing of a cancelled trace ever arrives; every survivor arrives exactly once.
        assert sorted(got) == survivors
        await asyncio.sleep(0.01)
        assert flow._rookery_ctx.queue_depth_in() == 0
        await flow.stop()

    asyncio.run(scenario())
