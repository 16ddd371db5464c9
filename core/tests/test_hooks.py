"""State-store persistence, message-bus publishing and middleware isolation (spec §1.11)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from penguiflow.bus import BusEnvelope
from penguiflow.core import create
from penguiflow.metrics import FlowEvent
from penguiflow.node import Node, NodePolicy
from penguiflow.state import RemoteBinding, StoredEvent


class RecordingStore:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[StoredEvent] = []
        self.bindings: list[RemoteBinding] = []
        self.fail = fail

    async def save_event(self, event: StoredEvent) -> None:
        if self.fail:
            raise OSError("disk full")
        self.events.append(event)

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        return [e for e in self.events if e.trace_id == trace_id]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        if self.fail:
            raise OSError("disk full")
        self.bindings.append(binding)


class RecordingBus:
    def __init__(self, fail: bool = False) -> None:
        self.envelopes: list[BusEnvelope] = []
        self.fail = fail

    async def publish(self, envelope: BusEnvelope) -> None:
        if self.fail:
            raise ConnectionError("bus down")
        self.envelopes.append(envelope)


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def chain() -> tuple[Node, Node]:
    a = Node(passthrough, name="a", policy=NodePolicy(validate="none"))
    b = Node(passthrough, name="b", policy=NodePolicy(validate="none"))
    return a, b


async def test_events_are_persisted_and_history_loads(msg_factory: Any) -> None:
    store = RecordingStore()
    a, b = chain()
    flow = create(a.to(b), state_store=store)
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await flow.fetch()
    await flow.stop()
    history = await flow.load_history(message.trace_id)
    assert [e.kind for e in history] == ["node_start", "node_success"] * 2
    assert history[0].node_name == "a" and history[0].payload["event"] == "node_start"


async def test_load_history_without_store_is_clear() -> None:
    flow = create()
    with pytest.raises(RuntimeError, match="PenguiFlow was created without a state_store"):
        await flow.load_history("t")


async def test_failing_store_never_breaks_the_flow(
    caplog: pytest.LogCaptureFixture, msg_factory: Any
) -> None:
    a, b = chain()
    flow = create(a.to(b), state_store=RecordingStore(fail=True))
    flow.run()
    with caplog.at_level(logging.ERROR, logger="penguiflow.core"):
        await flow.emit(msg_factory(1))
        assert (await flow.fetch()).payload == 1
        await flow.save_remote_binding(RemoteBinding("t", None, "task", "http://agent"))
    await flow.stop()
    messages = {r.message for r in caplog.records}
    assert "state_store_save_failed" in messages and "state_store_binding_failed" in messages


async def test_every_enqueue_is_published(msg_factory: Any) -> None:
    bus = RecordingBus()
    a, b = chain()
    flow = create(a.to(b), message_bus=bus)
    flow.run()
    message = msg_factory(1, meta={"k": "v"})
    await flow.emit(message)
    await flow.fetch()
    await flow.stop()
    assert [e.edge for e in bus.envelopes] == ["OpenSea->a", "a->b", "b->Rookery"]
    first = bus.envelopes[0]
    assert first.source == "OpenSea" and first.target == "a"
    assert first.trace_id == message.trace_id and first.payload is message
    assert first.headers == {"tenant": "test", "topic": None, "priority": 0}
    assert first.meta == {"k": "v"}


async def test_emit_nowait_publishes_in_background(msg_factory: Any) -> None:
    bus = RecordingBus()
    a, _ = chain()
    flow = create(a.to(), message_bus=bus)
    flow.run()
    flow.emit_nowait(msg_factory(1))
    await flow.fetch()
    await flow.stop()  # awaits outstanding publishes
    # The nowait publish runs in the background, so only membership is guaranteed.
    assert sorted(e.edge for e in bus.envelopes) == ["OpenSea->a", "a->Rookery"]


async def test_failing_bus_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, msg_factory: Any
) -> None:
    a, _ = chain()
    flow = create(a.to(), message_bus=RecordingBus(fail=True))
    flow.run()
    with caplog.at_level(logging.ERROR, logger="penguiflow.core"):
        await flow.emit(msg_factory(1))
        assert (await flow.fetch()).payload == 1
    await flow.stop()
    assert any(r.message == "message_bus_publish_failed" for r in caplog.records)


async def test_broken_middleware_is_isolated(
    caplog: pytest.LogCaptureFixture, msg_factory: Any
) -> None:
    seen: list[str] = []

    async def broken(event: FlowEvent) -> None:
        raise ValueError("middleware bug")

    async def good(event: FlowEvent) -> None:
        seen.append(event.event_type)

    a, _ = chain()
    flow = create(a.to(), middlewares=[broken])
    flow.add_middleware(good)
    flow.run()
    with caplog.at_level(logging.ERROR, logger="penguiflow.core"):
        await flow.emit(msg_factory(1))
        await flow.fetch()
    await flow.stop()
    assert seen == ["node_start", "node_success", "node_cancelled"]
    assert any(r.message == "middleware_error" for r in caplog.records)


async def test_record_remote_event(msg_factory: Any) -> None:
    seen: list[FlowEvent] = []

    async def collect(event: FlowEvent) -> None:
        seen.append(event)

    a, _ = chain()
    flow = create(a.to(), middlewares=[collect])
    await flow.record_remote_event(
        event="remote_call_start",
        node=a,
        context=flow._contexts[a],
        trace_id="t",
        latency_ms=0.0,
        extra={"remote_skill": "s", "message": "clashes with LogRecord"},
    )
    assert seen[0].event_type == "remote_call_start" and seen[0].attempt == 0
    assert seen[0].node_name == "a" and seen[0].extra["remote_skill"] == "s"


async def test_stop_never_loses_an_event_being_saved(msg_factory: Any) -> None:
    """Regression: stop() cancelled a worker mid-save, dropping the last event."""
    import asyncio

    class SlowStore(RecordingStore):
        async def save_event(self, event: StoredEvent) -> None:
            await asyncio.sleep(0.01)
            await super().save_event(event)

    store = SlowStore()
    a, _ = chain()
    flow = create(a.to(), state_store=store)
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await flow.fetch()  # returns before the worker has recorded node_success
    await flow.stop()
    assert [e.kind for e in await flow.load_history(message.trace_id)][:2] == [
        "node_start",
        "node_success",
    ]
