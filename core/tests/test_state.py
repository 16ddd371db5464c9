"""State records, capabilities and the in-memory store (spec §1.15)."""

from __future__ import annotations

import asyncio

import pytest

import penguiflow.state as state_module
from penguiflow.metrics import FlowEvent
from penguiflow.state import (
    RemoteBinding,
    StateStore,
    StoredEvent,
    SupportsConversationBindings,
    missing_capabilities,
    require_capabilities,
)


def event(trace_id: str = "t", ts: float = 1.0, kind: str = "node_start") -> StoredEvent:
    return StoredEvent(
        trace_id=trace_id, ts=ts, kind=kind, node_name="n", node_id="id", payload={"event": kind}
    )


def test_from_flow_event() -> None:
    flow_event = FlowEvent(
        event_type="node_success",
        ts=2.0,
        node_name="n",
        node_id="id",
        trace_id="t",
        attempt=0,
        latency_ms=1.5,
        queue_depth_in=0,
        queue_depth_out=0,
        outgoing_edges=1,
        queue_maxsize=64,
        trace_pending=1,
        trace_inflight=0,
        trace_cancelled=False,
    )
    stored = StoredEvent.from_flow_event(flow_event)
    assert (stored.kind, stored.trace_id, stored.ts) == ("node_success", "t", 2.0)
    assert stored.payload == flow_event.to_payload()


def test_binding_defaults() -> None:
    binding = RemoteBinding("t", None, "task", "http://a")
    assert binding.is_terminal is False and binding.metadata == {} and binding.remote_skill is None


async def test_in_memory_store_is_lazy_ordered_idempotent_and_concurrent() -> None:
    store = state_module.InMemoryStateStore()
    assert isinstance(store, StateStore) and isinstance(store, SupportsConversationBindings)
    await store.save_event(event(ts=2.0, kind="b"))
    await store.save_event(event(ts=1.0, kind="a"))
    await store.save_event(event(ts=1.0, kind="a"))  # the same event twice is stored once
    assert [e.kind for e in await store.load_history("t")] == ["a", "b"]
    await asyncio.gather(*(store.save_event(event("c", ts=float(i))) for i in range(50)))
    assert len(await store.load_history("c")) == 50
    assert await store.load_history("unknown") == []


async def test_bindings() -> None:
    store = state_module.InMemoryStateStore()
    await store.save_remote_binding(RemoteBinding("t", "c1", "task1", "u"))
    await store.save_remote_binding(RemoteBinding("t", "c1", "task1", "u", remote_skill="s"))
    assert len(await store.list_bindings("t")) == 1
    found = await store.find_binding(context_id="c1")
    assert found is not None and found.remote_skill == "s"
    await store.mark_binding_terminal(trace_id="t", task_id="task1")
    assert (await store.list_bindings("t"))[0].is_terminal
    assert await store.find_binding(trace_id="none") is None
    with pytest.raises(ValueError, match="needs trace_id or context_id"):
        await store.find_binding()


def test_capability_checks() -> None:
    store = state_module.InMemoryStateStore()
    assert missing_capabilities(store, ["save_event", "put_artifact"]) == ["put_artifact"]
    require_capabilities(store, feature="history", methods=["load_history"])
    with pytest.raises(
        TypeError, match=r"StateStore missing \['put_artifact'\] required for feature=files"
    ):
        require_capabilities(store, feature="files", methods=["put_artifact"])


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        state_module.Nope  # noqa: B018


def test_capabilities_are_discoverable() -> None:
    from penguiflow.state import CAPABILITIES, capabilities

    class EventsOnly:
        async def save_event(self, event: object) -> None: ...

        async def load_history(self, trace_id: str) -> list[object]:
            return []

        async def save_remote_binding(self, binding: object) -> None: ...

    assert capabilities(EventsOnly()) == frozenset()
    assert set(CAPABILITIES) >= {"planner_state", "memory_state", "tasks", "steering",
                                 "trajectories", "planner_events", "artifacts",
                                 "conversation_bindings"}  # fmt: skip
    assert "tasks" in capabilities(state_module.InMemoryStateStore())


async def test_tasks_need_an_id() -> None:
    with pytest.raises(ValueError, match="non-empty 'task_id'"):
        await state_module.InMemoryStateStore().save_task("s", {"status": "x"})
