"""`create()` refuses arguments that cannot work, instead of failing once per event later."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from penguiflow import FinalAnswer, Node, NodePolicy, create
from penguiflow._flow_resource import FlowResource
from penguiflow.errors import InvalidTypeError
from penguiflow.metrics import FlowEvent
from penguiflow.state import RemoteBinding, StoredEvent


async def echo(message: Any, ctx: Any) -> Any:
    return message


def node() -> Node:
    return Node(echo, name="echo", policy=NodePolicy(validate="none"))


class MinimalStore:
    """Not a subclass of anything: a store is whatever has the three methods."""

    async def save_event(self, event: StoredEvent) -> None:
        pass

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        return []

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        pass


class HalfStore:
    async def save_event(self, event: StoredEvent) -> None:
        pass


@pytest.mark.parametrize(
    ("options", "match"),
    [
        # Regression: these were accepted, and every event then failed, logged, not raised.
        ({"state_store": 123}, r"state_store got int 123, which is not a StateStore"),
        ({"state_store": HalfStore()}, r"state_store got HalfStore .*load_history"),
        ({"message_bus": object()}, r"message_bus got object .*, which is not a MessageBus"),
        ({"middlewares": [1]}, r"middlewares\[0\] is int 1, not a middleware"),
        ({"middlewares": ["log"]}, r"middlewares\[0\] is str 'log'"),
        ({"middlewares": echo}, r"pass middlewares=\[middleware\]"),
        ({"middlewares": "log"}, r"pass middlewares=\[middleware\]"),
        ({"middlewares": 5}, r"middlewares must be a list of middlewares"),
        ({"queue_maxsize": "64"}, r"queue_maxsize must be an int .*got str '64'"),
        ({"queue_maxsize": 1.5}, r"queue_maxsize must be an int"),
        ({"queue_maxsize": True}, r"queue_maxsize must be an int"),
        ({"queue_maxsize": None}, r"queue_maxsize must be an int"),
    ],
)
def test_arguments_of_the_wrong_kind_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidTypeError, match=match):
        create(node().to(), **options)


def test_a_driver_url_that_builds_the_wrong_kind_of_object_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("penguiflow.plugins.resolve_driver", lambda kind, spec: object())
    with pytest.raises(InvalidTypeError, match=r"the driver for state_store='odd://x' built"):
        create(node().to(), state_store="odd://x")


def test_every_runtime_gets_the_same_checks() -> None:
    """The checks live in `FlowResource`, which every runtime's flow (the redis one too)
    builds on: its `_own` and `_own_middlewares`."""

    class AnyRuntimeFlow(FlowResource):
        pass

    flow = AnyRuntimeFlow()
    with pytest.raises(InvalidTypeError, match="state_store got int 123"):
        flow._own("state_store", 123)
    with pytest.raises(InvalidTypeError, match=r"middlewares\[1\] is int 1"):
        flow._own_middlewares([print, 1])
    store = MinimalStore()
    assert flow._own("state_store", store) is store
    assert flow._own("state_store", None) is None
    assert flow._own_middlewares(None) == []


async def test_valid_arguments_are_kept() -> None:
    seen: list[str] = []

    async def middleware(event: FlowEvent) -> None:
        seen.append(event.event_type)

    store = MinimalStore()
    flow = create(node().to(), state_store=store, middlewares=(middleware,), queue_maxsize=0)
    assert flow.state_store is store and flow.middlewares == [middleware]
    flow.run()
    await flow.emit(FinalAnswer(text="x"))
    assert await flow.fetch() == FinalAnswer(text="x")
    await flow.stop()
    assert "node_success" in seen


async def test_a_negative_queue_maxsize_is_unbounded_like_zero() -> None:
    """PenguiFlow's rule (`queue_maxsize <= 0` is unbounded), kept: -5 is not refused."""
    bounded = create(node().to(), queue_maxsize=1)
    bounded.emit_nowait("first")
    with pytest.raises(asyncio.QueueFull):
        bounded.emit_nowait("second")
    for size in (0, -5):
        flow = create(node().to(), queue_maxsize=size)
        for index in range(500):  # nothing consumes: a bounded queue would be full
            flow.emit_nowait(index)
        flow.run()
        assert [await flow.fetch() for _ in range(500)] == list(range(500))
        await flow.stop()
