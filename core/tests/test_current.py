"""`penguiflow.current`: code a node calls finds its flow and its ctx without being passed
them; the code that started the flow, and code outside any flow, finds neither."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import penguiflow.current as current
from penguiflow.core import create
from penguiflow.current import current_context, current_flow, flow_scope, using_context
from penguiflow.node import Node


def test_public_names() -> None:
    assert sorted(current.__all__) == [
        "current_context",
        "current_flow",
        "flow_scope",
        "using_context",
    ]


async def test_a_node_and_the_tasks_it_starts_see_their_flow_and_ctx() -> None:
    seen: dict[str, Any] = {}

    def helper() -> tuple[Any, Any]:
        # A library function the node calls without passing anything along.
        return current_flow(), current_context()

    async def node(message: Any, ctx: Any) -> Any:
        seen["direct"] = helper()
        seen["ctx"] = ctx

        async def child() -> tuple[Any, Any]:
            return helper()

        seen["child"] = await asyncio.create_task(child())
        return message

    flow = create(Node(node, name="probe").to())
    flow.run()
    try:
        await flow.emit("hello")
        assert await flow.fetch() == "hello"
        # The code that started the flow is not its work, before or after run().
        assert current_flow() is None
        assert current_context() is None
    finally:
        await flow.stop()
    assert seen["direct"] == (flow, seen["ctx"])
    assert seen["child"] == (flow, seen["ctx"])


async def test_two_flows_are_told_apart() -> None:
    owners: dict[str, Any] = {}

    def probe(label: str) -> Any:
        async def node(message: Any, ctx: Any) -> Any:
            owners[label] = current_flow()
            return message

        return Node(node, name=f"probe_{label}")

    first = create(probe("first").to())
    second = create(probe("second").to())
    first.run()
    second.run()
    try:
        for flow in (first, second):
            await flow.emit(1)
            await flow.fetch()
    finally:
        await first.stop()
        await second.stop()
    assert owners == {"first": first, "second": second}


async def test_scopes_restore_what_was_there() -> None:
    class Flow:
        pass

    outer, inner = Flow(), Flow()
    with flow_scope(outer):
        with flow_scope(inner):
            assert current_flow() is inner
        assert current_flow() is outer
    assert current_flow() is None

    with using_context("outer ctx"):
        with using_context("inner ctx"):
            assert current_context() == "inner ctx"
        assert current_context() == "outer ctx"
    assert current_context() is None


def test_the_flow_is_held_weakly() -> None:
    class Flow:
        pass

    def is_current(flow: Any) -> bool:
        return current_flow() is flow

    flows: list[Any] = [Flow()]
    with flow_scope(flows[0]):
        # Checked in a function: pytest's rewritten asserts keep their operands alive.
        tracked = is_current(flows[0])
        flows.clear()
        gc.collect()
        assert current_flow() is None
    assert tracked


def test_a_flow_that_cannot_be_weakly_referenced_is_not_tracked() -> None:
    with flow_scope(("a", "tuple")):
        assert current_flow() is None


@pytest.mark.parametrize("kind", ["flow", "context"])
def test_outside_everything_nothing_is_current(kind: str) -> None:
    assert (current_flow() if kind == "flow" else current_context()) is None
