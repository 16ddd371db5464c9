"""Routers, join_k and map_concurrent (spec §1.20), end to end on real flows."""

from __future__ import annotations

import asyncio
import random
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from penguiflow.core import create
from penguiflow.node import Node, NodePolicy
from penguiflow.patterns import (
    _normalize_targets,
    join_k,
    map_concurrent,
    predicate_router,
    union_router,
)
from penguiflow.policies import DictRoutingPolicy, RoutingRequest
from penguiflow.types import Headers, Message


def tagger(name: str) -> Node:
    async def tag(message: Any, ctx: Any) -> Any:
        if isinstance(message, Message):
            return message.model_copy(update={"payload": f"{name}:{message.payload}"})
        return f"{name}:{message}"

    return Node(tag, name=name, policy=NodePolicy(validate="none"))


async def test_predicate_router_by_name_node_list_and_drop(msg_factory: Any) -> None:
    left, right = tagger("left"), tagger("right")

    def choose(message: Message) -> Any:
        return {"l": "left", "r": right, "both": ["left", right], "none": None, "empty": []}[
            message.payload
        ]

    router = predicate_router("router", choose)
    flow = create(router.to(left, right), left.to(), right.to())
    flow.run()
    for payload in ("none", "empty", "l", "r"):
        await flow.emit(msg_factory(payload))
    got = [(await flow.fetch()).payload for _ in range(2)]
    await flow.emit(msg_factory("both"))
    got += sorted([(await flow.fetch()).payload, (await flow.fetch()).payload])
    await flow.stop()
    assert got == ["left:l", "right:r", "left:both", "right:both"]
    assert router.policy.validate == "none"


async def test_unknown_successor_name(msg_factory: Any) -> None:
    left = tagger("left")
    router = predicate_router("router", lambda m: "nowhere")
    flow = create(router.to(left), left.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(msg_factory(1))
    error = await flow.fetch()
    await flow.stop()
    assert "No successor named 'nowhere'" in error.message


def test_normalize_targets_rejects_other_types() -> None:
    class Ctx:
        _outgoing: dict[Any, Any] = {}

    with pytest.raises(TypeError, match="Targets must be Node or str"):
        _normalize_targets(Ctx(), [42])  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="No successor named 'x'"):
        _normalize_targets(Ctx(), "x")  # type: ignore[arg-type]


async def test_router_policy_overrides_and_drops(msg_factory: Any) -> None:
    left, right = tagger("left"), tagger("right")
    policy = DictRoutingPolicy(
        {"acme": "right", "drop": None},
        default="left",
        key_getter=lambda request: request.message.headers.tenant,
    )
    seen: list[RoutingRequest] = []

    async def spy(request: RoutingRequest) -> Any:
        seen.append(request)
        return policy.select(request)

    router = predicate_router("router", lambda m: ["left", "right"], policy=spy)
    flow = create(router.to(left, right), left.to(), right.to())
    flow.run()
    for tenant in ("drop", "acme", "other"):
        await flow.emit(Message(payload=tenant, headers=Headers(tenant=tenant)))
    got = [(await flow.fetch()).payload for _ in range(2)]
    await flow.stop()
    assert sorted(got) == ["left:other", "right:acme"]
    assert seen[0].proposed_names == ("left", "right") and seen[0].node_name == "router"


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    name: str


class Dog(BaseModel):
    name: str


async def test_union_router_routes_validated_models() -> None:
    cats, dogs = tagger("cat"), tagger("Dog")
    router = union_router("animals", Cat | Dog)
    flow = create(router.to(cats, dogs), cats.to(), dogs.to())
    flow.run()
    await flow.emit({"kind": "cat", "name": "tom"})
    assert (await flow.fetch()) == "cat:kind='cat' name='tom'"
    await flow.emit(Dog(name="rex"))
    assert (await flow.fetch()) == "Dog:name='rex'"
    await flow.stop()


def test_join_k_rejects_non_positive_k() -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        join_k("join", 0)


async def test_join_k_requires_trace_ids() -> None:
    join = join_k("join", 2)
    with pytest.raises(ValueError, match="join_k requires messages with trace_id"):
        await join.func("raw", None)


async def test_join_k_raw_items_come_back_as_list() -> None:
    class Item:
        def __init__(self, trace_id: str, value: int) -> None:
            self.trace_id, self.value = trace_id, value

    join = join_k("join", 2)
    first, second = Item("t", 1), Item("t", 2)
    assert await join.func(first, None) is None
    assert await join.func(second, None) == [first, second]


@settings(max_examples=20, deadline=None)
@given(traces=st.integers(min_value=1, max_value=6), width=st.integers(min_value=2, max_value=5))
def test_join_k_under_random_arrival_with_tight_queues(traces: int, width: int) -> None:
    async def scenario() -> None:
        async def jitter(message: Message, ctx: Any) -> Message:
            await asyncio.sleep(random.random() / 500)
            return message.model_copy(update={"payload": ctx.owner.name})

        async def split(message: Message, ctx: Any) -> Message:
            return message

        source = Node(split, name="split", policy=NodePolicy(validate="none"))
        workers = [
            Node(jitter, name=f"w{i}", policy=NodePolicy(validate="none")) for i in range(width)
        ]
        join = join_k("join", width)
        flow = create(
            source.to(*workers), *(w.to(join) for w in workers), join.to(), queue_maxsize=1
        )
        flow.run()
        messages = [Message(payload=i, headers=Headers(tenant="t")) for i in range(traces)]
        producer = asyncio.gather(*(flow.emit(m) for m in messages))
        results = [await asyncio.wait_for(flow.fetch(), 5) for _ in messages]
        await producer
        await flow.stop()
        assert sorted(r.trace_id for r in results) == sorted(m.trace_id for m in messages)
        for result in results:
            assert sorted(result.payload) == sorted(f"w{i}" for i in range(width))
        assert flow._traces.states == {}

    asyncio.run(scenario())


async def test_map_concurrent_bounds_and_orders() -> None:
    running = peak = 0

    async def work(item: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(random.random() / 1000)
        running -= 1
        return item * 2

    assert await map_concurrent(range(20), work, max_concurrency=3) == [i * 2 for i in range(20)]
    assert peak <= 3
    assert await map_concurrent([1], work, max_concurrency=0) == [2]

    async def boom(item: int) -> int:
        raise ValueError(f"bad {item}")

    with pytest.raises(ValueError, match="bad"):
        await map_concurrent([1, 2], boom)
