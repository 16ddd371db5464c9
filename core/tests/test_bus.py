"""The in-memory message bus."""

from __future__ import annotations

import asyncio

import pytest

from penguiflow.bus import BusEnvelope, InMemoryMessageBus, MessageBus
from penguiflow.core import create
from penguiflow.node import Node, NodePolicy
from penguiflow.types import Headers, Message


def envelope(edge: str) -> BusEnvelope:
    source, target = edge.split("->")
    return BusEnvelope(
        edge=edge, source=source, target=target, trace_id=None, payload=1, headers=None, meta=None
    )


async def test_history_is_bounded_and_subscribers_filter() -> None:
    bus = InMemoryMessageBus(history=2)
    assert isinstance(bus, MessageBus)
    received: list[str] = []

    async def listen() -> None:
        async for item in bus.subscribe("a->b"):
            received.append(item.edge)
            if len(received) == 2:
                return

    listener = asyncio.get_running_loop().create_task(listen())
    await asyncio.sleep(0)
    for edge in ("a->b", "b->c", "a->b"):
        await bus.publish(envelope(edge))
    await asyncio.wait_for(listener, 1)
    assert received == ["a->b", "a->b"] and bus.edges() == ["b->c", "a->b"]
    assert bus._subscribers == []
    with pytest.raises(ValueError, match="history must be >= 0"):
        InMemoryMessageBus(history=-1)


async def test_flow_publishes_every_edge() -> None:
    async def passthrough(message: Message, ctx: object) -> Message:
        return message

    bus = InMemoryMessageBus()
    node = Node(passthrough, name="n", policy=NodePolicy(validate="none"))
    flow = create(node.to(), message_bus=bus)
    flow.run()
    await flow.emit(Message(payload=1, headers=Headers(tenant="t")))
    await flow.fetch()
    await flow.stop()
    assert bus.edges() == ["OpenSea->n", "n->Rookery"]
