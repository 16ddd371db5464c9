"""The in-memory message bus."""

from __future__ import annotations

import asyncio

import pytest

import penguiflow.bus as bus_module
from penguiflow.bus import BusClosedError, BusEnvelope, InMemoryMessageBus, MessageBus
from penguiflow.core import create
from penguiflow.errors import PenguiFlowError
from penguiflow.node import Node, NodePolicy
from penguiflow.types import Headers, Message


async def subscribed(bus: InMemoryMessageBus, count: int) -> None:
    """Wait (bounded) until `count` subscriptions are live, so no publish is missed."""
    async with asyncio.timeout(5):
        while len(bus._subscribers) < count:
            await asyncio.sleep(0)  # yield to the listener task; the loop ends on state


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
    await subscribed(bus, 1)
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


def test_public_names() -> None:
    assert bus_module.__all__ == [
        "BusClosedError",
        "BusEnvelope",
        "InMemoryMessageBus",
        "MessageBus",
    ]
    assert issubclass(BusClosedError, PenguiFlowError) and issubclass(BusClosedError, RuntimeError)


async def test_aclose_ends_subscriptions_after_what_was_queued() -> None:
    bus = InMemoryMessageBus()
    received: list[str] = []

    async def listen() -> None:
        async for item in bus.subscribe():
            received.append(item.edge)

    listener = asyncio.get_running_loop().create_task(listen())
    await subscribed(bus, 1)
    await bus.publish(envelope("a->b"))
    await bus.aclose()
    await asyncio.wait_for(listener, 5)  # the iteration ended by itself
    assert received == ["a->b"] and bus._subscribers == []


async def test_a_closed_bus_refuses_work_but_keeps_its_history() -> None:
    async with InMemoryMessageBus() as bus:
        await bus.publish(envelope("a->b"))
    with pytest.raises(BusClosedError, match=r"^InMemoryMessageBus is closed"):
        await bus.publish(envelope("b->c"))
    with pytest.raises(BusClosedError):
        await anext(bus.subscribe())
    await bus.aclose()  # idempotent
    assert bus.edges() == ["a->b"]
