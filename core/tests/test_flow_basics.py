"""Graph construction, run/stop lifecycle, emit/fetch and bad input (spec §1.2-1.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from penguiflow.core import OPEN_SEA, ROOKERY, CycleError, Endpoint, PenguiFlow, create
from penguiflow.node import Node, NodePolicy
from penguiflow.registry import ModelRegistry
from penguiflow.types import Headers, Message


def make_node(name: str, fn: Any = None, **kwargs: Any) -> Node:
    async def passthrough(message: Any, ctx: Any) -> Any:
        return message

    return Node(fn or passthrough, name=name, policy=NodePolicy(validate="none"), **kwargs)


def edges(flow: PenguiFlow) -> set[tuple[str, str]]:
    def label(v: Any) -> str:
        return v.name

    return {(label(f.source), label(f.target)) for f in flow._floes}


def test_chain_gets_ingress_and_egress() -> None:
    a, b = make_node("a"), make_node("b")
    flow = create(a.to(b))
    assert edges(flow) == {("OpenSea", "a"), ("a", "b"), ("b", "Rookery")}


def test_duplicate_successors_collapse() -> None:
    a, b = make_node("a"), make_node("b")
    flow = create(a.to(b, b), a.to(b))
    assert edges(flow) == {("OpenSea", "a"), ("a", "b"), ("b", "Rookery")}


def test_cycle_is_rejected_unless_allowed() -> None:
    a, b = make_node("a"), make_node("b")
    with pytest.raises(CycleError, match="Flow contains a cycle; enable allow_cycles to bypass"):
        create(a.to(b), b.to(a))
    flow = create(a.to(b), b.to(a), allow_cycles=True)
    assert ("a", "b") in edges(flow)


def test_self_loop_needs_allow_cycle_on_the_node() -> None:
    plain = make_node("plain")
    with pytest.raises(CycleError):
        create(plain.to(plain))
    ctrl = make_node("ctrl", allow_cycle=True)
    flow = create(ctrl.to(ctrl))
    # A self-loop does not count as a parent, and {self} counts as no successor.
    assert edges(flow) == {("OpenSea", "ctrl"), ("ctrl", "ctrl"), ("ctrl", "Rookery")}


def test_multi_node_cycle_is_a_cycle_even_with_allow_cycle_nodes() -> None:
    a, b = make_node("a", allow_cycle=True), make_node("b", allow_cycle=True)
    with pytest.raises(CycleError):
        create(a.to(b), b.to(a))


def test_controller_with_worker_has_no_rookery_edge() -> None:
    ctrl, worker = make_node("ctrl", allow_cycle=True), make_node("worker")
    flow = create(ctrl.to(ctrl, worker))
    assert ("ctrl", "Rookery") not in edges(flow)
    assert ("worker", "Rookery") in edges(flow)


def test_bad_adjacency_names_the_culprit() -> None:
    async def fn(message: Any, ctx: Any) -> Any:
        return message

    with pytest.raises(TypeError, match="not a Node"):
        create((make_node("a"), [fn]))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="adjacency #0"):
        create("a")  # type: ignore[arg-type]


def test_empty_flow_is_legal() -> None:
    async def main() -> None:
        flow = create()
        flow.run()
        assert flow._tasks == []
        await flow.stop()

    asyncio.run(main())


def test_run_without_loop_raises() -> None:
    flow = create(make_node("a").to())
    with pytest.raises(RuntimeError, match="no running event loop"):
        flow.run()


async def test_round_trip_and_lifecycle(msg_factory: Any) -> None:
    a, b = make_node("a"), make_node("b")
    flow = create(a.to(b))
    flow.run()
    with pytest.raises(RuntimeError, match="PenguiFlow already running"):
        flow.run()
    message = msg_factory("x")
    await flow.emit(message)
    assert await flow.fetch() is message
    await flow.stop()
    await flow.stop()  # idempotent


async def test_emit_before_run_waits_in_queue(msg_factory: Any) -> None:
    flow = create(make_node("a").to())
    message = msg_factory(1)
    await flow.emit(message)
    flow.run()
    assert await flow.fetch() is message
    await flow.stop()


async def test_stopped_flow_keeps_queued_items_for_next_run(msg_factory: Any) -> None:
    release = asyncio.Event()

    async def gate(message: Any, ctx: Any) -> Any:
        await release.wait()
        return message

    flow = create(make_node("a", gate).to(), queue_maxsize=8)
    flow.run()
    first, second = msg_factory(1), msg_factory(2)
    await flow.emit(first)
    await flow.emit(second)
    await asyncio.sleep(0.01)
    await flow.stop()
    release.set()
    flow.run()
    results = [await flow.fetch() for _ in range(1)]
    assert results[0] is second  # `first` was being processed when stopped
    await flow.stop()


async def test_emit_after_stop_is_a_clear_error(msg_factory: Any) -> None:
    flow = create(make_node("a").to())
    flow.run()
    await flow.stop()
    with pytest.raises(RuntimeError, match=r"emit\(\) called after stop\(\).*run\(\) again"):
        await flow.emit(msg_factory(1))
    with pytest.raises(RuntimeError, match="after stop"):
        flow.emit_nowait(msg_factory(1))
    flow.run()
    await flow.emit(msg_factory(2))
    assert (await flow.fetch()).payload == 2
    await flow.stop()


async def test_fanout_from_opensea_shares_the_object(msg_factory: Any) -> None:
    a, b = make_node("a"), make_node("b")
    flow = create(a.to(), b.to())
    flow.run()
    message = msg_factory("shared")
    await flow.emit(message)
    got = [await flow.fetch(), await flow.fetch()]
    assert got[0] is message and got[1] is message
    await flow.stop()


async def test_unknown_target_names_owner_and_fix(msg_factory: Any) -> None:
    a, b = make_node("a"), make_node("b")
    flow = create(a.to(b))
    with pytest.raises(KeyError, match="Unknown target b for OpenSea"):
        await flow.emit(msg_factory(1), to=b)
    with pytest.raises(KeyError, match="Unknown target stranger for OpenSea"):
        await flow.emit(msg_factory(1), to=make_node("stranger"))


async def test_emit_to_specific_ingress(msg_factory: Any) -> None:
    a, b = make_node("a"), make_node("b")
    flow = create(a.to(), b.to())
    flow.run()
    await flow.emit(msg_factory(1), to=b)
    await flow.emit(msg_factory(2), to=[a])
    payloads = sorted([(await flow.fetch()).payload, (await flow.fetch()).payload])
    assert payloads == [1, 2]
    await flow.stop()


async def test_fetch_from_specific_egress(msg_factory: Any) -> None:
    a, b = make_node("a"), make_node("b")
    flow = create(a.to(), b.to())
    flow.run()
    await flow.emit(msg_factory("to-a"), to=a)
    await flow.emit(msg_factory("to-b"), to=b)
    assert (await flow.fetch(from_=b)).payload == "to-b"
    assert (await flow.fetch(from_=a)).payload == "to-a"
    await flow.stop()


async def test_untraced_values_flow_through(msg_factory: Any) -> None:
    async def shout(message: str, ctx: Any) -> str:
        return message.upper()

    flow = create(make_node("shout", shout).to())
    flow.run()
    await flow.emit("hello")
    assert await flow.fetch() == "HELLO"
    await flow.stop()


async def test_none_result_emits_nothing(msg_factory: Any) -> None:
    async def swallow(message: Any, ctx: Any) -> None:
        return None

    flow = create(make_node("swallow", swallow).to())
    flow.run()
    await flow.emit(msg_factory(1))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(flow.fetch(), 0.05)
    assert flow._traces.states == {}
    await flow.stop()


async def test_fetch_without_rookery_edges_raises() -> None:
    ctrl = make_node("ctrl", allow_cycle=True)
    worker = make_node("worker")
    flow = create(ctrl.to(ctrl, worker), worker.to(ctrl), allow_cycles=True)
    with pytest.raises(RuntimeError, match="context has no incoming floes to fetch from"):
        await flow.fetch()


async def test_context_requires_runtime(msg_factory: Any) -> None:
    from penguiflow.core import Context

    ctx = Context(make_node("a"))
    with pytest.raises(RuntimeError, match="Context is not attached to a running flow"):
        await ctx.emit(msg_factory(1))
    with pytest.raises(RuntimeError, match="Context is not attached to a running flow"):
        await ctx.emit_chunk(parent=msg_factory(1), text="x")


def test_endpoint_equality_and_names() -> None:
    assert Endpoint("Rookery") == ROOKERY
    assert hash(Endpoint("OpenSea")) == hash(OPEN_SEA)


async def test_registry_validation_and_missing_entries() -> None:
    from pydantic import BaseModel

    class In(BaseModel):
        x: int

    class Out(BaseModel):
        y: int

    async def double(message: In, ctx: Any) -> Out:
        return Out(y=message.x * 2)

    node = Node(double, name="double")
    flow = create(node.to())
    with pytest.raises(
        RuntimeError, match="missing entries for nodes requiring validation: double"
    ):
        flow.run(registry=ModelRegistry())
    registry = ModelRegistry()
    registry.register("double", In, Out)
    flow.run(registry=registry)
    await flow.emit({"x": 21})
    assert await flow.fetch() == Out(y=42)
    await flow.stop()


async def test_message_models_warn_on_non_message_output(msg_factory: Any) -> None:
    async def unwrap(message: Message, ctx: Any) -> Any:
        return {"payload": "raw"}

    registry = ModelRegistry()
    registry.register("unwrap", Message, Message)
    node = Node(unwrap, name="unwrap", policy=NodePolicy(validate="in"))
    flow = create(node.to())
    flow.run(registry=registry)
    with pytest.warns(RuntimeWarning, match="is registered for Message -> Message outputs"):
        await flow.emit(msg_factory(1))
        await flow.fetch()
    await flow.stop()


async def test_headers_survive_the_chain() -> None:
    a, b = make_node("a"), make_node("b")
    flow = create(a.to(b))
    flow.run()
    msg = Message(payload=1, headers=Headers(tenant="acme", topic="t", priority=3))
    await flow.emit(msg)
    out = await flow.fetch()
    assert out.headers == msg.headers and out.trace_id == msg.trace_id
    await flow.stop()
