"""The same workload shapes on PenguiFlow's public API."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from penguiflow import (
    WM,
    FinalAnswer,
    Headers,
    Message,
    ModelRegistry,
    Node,
    NodePolicy,
    PenguiFlow,
    create,
    join_k,
)

__all__ = [
    "chain",
    "chain_unbounded",
    "controller",
    "controller_items",
    "controller_step",
    "drive",
    "fanout_join",
    "messages",
]

FREE = NodePolicy(validate="none")


def messages(count: int, payload: Any = None) -> list[Message]:
    headers = Headers(tenant="bench")
    return [
        Message(payload=i if payload is None else payload, headers=headers) for i in range(count)
    ]


async def drive(flow: Any, items: Sequence[Any], in_flight: int) -> float:
    """Emit `items` keeping `in_flight` of them outstanding, fetch every result; seconds taken.

    `flow` is anything with `emit` and `fetch` (a local flow, or one on another runtime)."""
    started = time.perf_counter()
    iterator = iter(items)
    outstanding = 0
    for item in iterator:
        await flow.emit(item)
        outstanding += 1
        if outstanding >= in_flight:
            break
    for item in iterator:
        await flow.fetch()
        await flow.emit(item)
    for _ in range(outstanding):
        await flow.fetch()
    return time.perf_counter() - started


async def _passthrough(message: Any, ctx: Any) -> Any:
    return message


class Payload(BaseModel):
    value: int


def chain_flow(
    hops: int, *, validate: bool = False, maxsize: int = 64
) -> tuple[PenguiFlow, ModelRegistry | None]:
    policy = NodePolicy(validate="both") if validate else FREE
    nodes = [Node(_passthrough, name=f"n{i}", policy=policy) for i in range(hops)]
    flow = create(
        *(a.to(b) for a, b in itertools.pairwise(nodes)),
        nodes[-1].to(),
        queue_maxsize=maxsize,
    )
    registry = None
    if validate:
        registry = ModelRegistry()
        for node in nodes:
            registry.register(str(node.name), Message, Message)
    return flow, registry


async def chain(
    items: Sequence[Any], *, hops: int, in_flight: int, validate: bool = False
) -> float:
    flow, registry = chain_flow(hops, validate=validate)
    flow.run(registry=registry)
    try:
        return await drive(flow, items, in_flight)
    finally:
        await flow.stop()


async def chain_unbounded(items: Sequence[Any], *, hops: int) -> float:
    flow, _ = chain_flow(hops, maxsize=0)
    flow.run()
    started = time.perf_counter()
    for item in items:
        flow.emit_nowait(item)
    for _ in items:
        await flow.fetch()
    elapsed = time.perf_counter() - started
    await flow.stop()
    return elapsed


async def fanout_join(items: Sequence[Any], *, width: int, in_flight: int) -> float:
    source = Node(_passthrough, name="source", policy=FREE)
    workers = [Node(_passthrough, name=f"w{i}", policy=FREE) for i in range(width)]
    join = join_k("join", width)
    flow = create(source.to(*workers), *(w.to(join) for w in workers), join.to())
    flow.run()
    try:
        return await drive(flow, items, in_flight)
    finally:
        await flow.stop()


def controller_step(hops: int) -> Any:
    """The controller's node body, shared with the bare shape so both do the same work."""

    async def step(message: Message, ctx: Any = None) -> Message:
        wm = message.payload
        if wm.hops + 1 >= hops:
            return message.model_copy(update={"payload": FinalAnswer(text="done")})
        return message.model_copy(update={"payload": wm.model_copy(update={"hops": wm.hops + 1})})

    return step


def controller_items(traces: int, hops: int) -> list[Message]:
    return [
        m.model_copy(update={"payload": WM(query="q", budget_hops=hops + 1)})
        for m in messages(traces)
    ]


async def controller(items: Sequence[Message], *, hops: int, in_flight: int) -> float:
    ctrl = Node(controller_step(hops), name="controller", policy=FREE, allow_cycle=True)
    flow = create(ctrl.to(ctrl))
    flow.run()
    try:
        return await drive(flow, items, in_flight)
    finally:
        await flow.stop()
