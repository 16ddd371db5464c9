"""Subflows with `call_playbook` (spec §1.9)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import EventLog

from penguiflow.core import PenguiFlow, TraceCancelled, call_playbook, create
from penguiflow.node import Node, NodePolicy
from penguiflow.types import Message


def node(name: str, fn: Any, **kwargs: Any) -> Node:
    return Node(fn, name=name, policy=NodePolicy(validate="none", **kwargs))


async def test_playbook_returns_payload_and_stops_subflow(msg_factory: Any) -> None:
    subflows: list[PenguiFlow] = []

    async def enrich(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": f"enriched:{message.payload}"})

    def playbook() -> tuple[PenguiFlow, None]:
        flow = create(node("enrich", enrich).to())
        subflows.append(flow)
        return flow, None

    async def parent(message: Message, ctx: Any) -> Message:
        result = await ctx.call_playbook(playbook, message)
        return message.model_copy(update={"payload": result})

    flow = create(node("parent", parent).to())
    flow.run()
    await flow.emit(msg_factory("x"))
    assert (await flow.fetch()).payload == "enriched:x"
    await flow.stop()
    assert subflows and not subflows[0]._running


async def test_parent_cancel_reaches_subflow(msg_factory: Any) -> None:
    sub_started = asyncio.Event()
    sub_cancelled = asyncio.Event()
    subflows: list[PenguiFlow] = []

    async def deep(message: Message, ctx: Any) -> Message:
        sub_started.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            sub_cancelled.set()
            raise
        return message

    def playbook() -> tuple[PenguiFlow, None]:
        flow = create(node("deep", deep).to())
        subflows.append(flow)
        return flow, None

    async def parent(message: Message, ctx: Any) -> Any:
        return await ctx.call_playbook(playbook, message)

    log = EventLog()
    flow = create(node("parent", parent).to(), middlewares=[log])
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await sub_started.wait()
    await flow.cancel(message.trace_id)
    await asyncio.wait_for(sub_cancelled.wait(), 1)
    for _ in range(100):
        if log.of("trace_cancel_finish"):
            break
        await asyncio.sleep(0.005)
    await flow.stop()
    assert log.of("node_trace_cancelled")
    assert not subflows[0]._running and subflows[0]._tasks == []


async def test_pre_cancelled_parent_never_runs_subflow(msg_factory: Any) -> None:
    ran = False

    async def sub(message: Message, ctx: Any) -> Message:
        nonlocal ran
        ran = True
        return message

    async def parent(message: Message, ctx: Any) -> Any:
        return message

    host = create(node("parent", parent).to())
    host.run()
    message = msg_factory(1)
    host._traces.add(message.trace_id)
    host._traces.mark_cancelled(message.trace_id)
    with pytest.raises(TraceCancelled):
        await call_playbook(lambda: (create(node("sub", sub).to()), None), message, runtime=host)
    assert not ran
    await host.stop()


async def test_playbook_timeout_becomes_node_timeout(msg_factory: Any) -> None:
    async def forever(message: Message, ctx: Any) -> Message:
        await asyncio.sleep(5)
        return message

    async def parent(message: Message, ctx: Any) -> Any:
        return await ctx.call_playbook(
            lambda: (create(node("forever", forever).to()), None), message, timeout=0.02
        )

    log = EventLog()
    flow = create(node("parent", parent).to(), middlewares=[log], emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(msg_factory(1))
    error = await flow.fetch()
    await flow.stop()
    assert error.code == "NODE_TIMEOUT"
    assert log.of("node_timeout")
