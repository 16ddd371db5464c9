"""State records, capabilities, the helpers for store authors and the in-memory store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import penguiflow.state as state_module
from penguiflow.errors import PenguiFlowError
from penguiflow.metrics import FlowEvent
from penguiflow.state import (
    RemoteBinding,
    SessionLogs,
    StateStore,
    StateStoreError,
    StoreClosedError,
    StoredEvent,
    StoreRequestError,
    SupportsConversationBindings,
    SupportsSteering,
    check_binding_query,
    event_fingerprint,
    log_cursor,
    missing_capabilities,
    require_capabilities,
    task_id_of,
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
                                 "conversation_bindings", "audit"}  # fmt: skip
    assert "tasks" in capabilities(state_module.InMemoryStateStore())


async def test_tasks_need_an_id() -> None:
    with pytest.raises(ValueError, match="non-empty 'task_id'"):
        await state_module.InMemoryStateStore().save_task("s", {"status": "x"})


# -- the public helpers for store authors ----------------------------------------------------


def test_public_names() -> None:
    assert sorted(state_module.__all__) == [
        "AuditRecord",
        "CAPABILITIES",
        "InMemoryStateStore",
        "RemoteBinding",
        "SchemaVersionError",
        "SessionLogs",
        "StateStore",
        "StateStoreError",
        "StoreClosedError",
        "StoreRequestError",
        "StoredEvent",
        "SupportsArtifacts",
        "SupportsAudit",
        "SupportsConversationBindings",
        "SupportsMemoryState",
        "SupportsPlannerEvents",
        "SupportsPlannerState",
        "SupportsSteering",
        "SupportsTasks",
        "SupportsTrajectories",
        "capabilities",
        "check_audit_query",
        "check_binding_query",
        "event_fingerprint",
        "log_cursor",
        "missing_capabilities",
        "require_capabilities",
        "select_audit",
        "task_id_of",
    ]
    for name in state_module.__all__:
        assert getattr(state_module, name) is not None


def test_store_errors_form_a_tree_under_penguiflow_error() -> None:
    assert issubclass(StateStoreError, PenguiFlowError)
    assert issubclass(StoreClosedError, StateStoreError) and issubclass(
        StoreClosedError, RuntimeError
    )
    assert issubclass(StoreRequestError, StateStoreError) and issubclass(
        StoreRequestError, ValueError
    )


def test_event_fingerprint_is_stable_and_sensitive() -> None:
    # Durable stores persist fingerprints: the recipe must never change.
    fixed = StoredEvent("t", 1.5, "node_start", "n", "id", {"b": 2, "a": [1, "x"]})
    assert event_fingerprint(fixed) == (
        "14fe3349d92e6aeffa26b3b529572c7e387f86fa595197dcc78db3fe5905c7b2"
    )
    same = StoredEvent("t", 1.5, "node_start", "n", "id", {"a": [1, "x"], "b": 2})
    assert event_fingerprint(same) == event_fingerprint(fixed)
    assert event_fingerprint(event(ts=1.5)) != event_fingerprint(event(ts=1.6))


def test_task_id_of_and_binding_queries_refuse_with_store_request_errors() -> None:
    assert task_id_of({"task_id": 7}) == "7"
    with pytest.raises(StoreRequestError, match=r"non-empty 'task_id' \(got keys \['status'\]\)"):
        task_id_of({"status": "x"})
    check_binding_query("t", None)
    check_binding_query(None, "c")
    with pytest.raises(StoreRequestError, match="needs trace_id or context_id"):
        check_binding_query(None, None)


def test_log_cursor() -> None:
    assert log_cursor(None) == 0
    assert log_cursor("12") == 12
    assert log_cursor(" 3 ") == 3
    assert log_cursor(4) == 4
    for bad in ("abc", "-1", "1.5", "", "٣", True, 2.0):
        with pytest.raises(StoreRequestError, match="since_id must be an id returned by the log"):
            log_cursor(bad)  # type: ignore[arg-type]


class DictLogs(SessionLogs):
    """The smallest SessionLogs store: what the mixin asks of a store, and nothing else."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, int, dict[str, Any]]] = []
        self.reads: list[int] = []

    async def _append_log(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        key = entry.get(key_field)
        for name, where, entry_id, saved in self.entries:
            if (name, where) == (log, scope) and key is not None and saved.get(key_field) == key:
                return str(entry_id)
        self.entries.append((log, scope, len(self.entries) + 1, dict(entry)))
        return str(len(self.entries))

    async def _read_log(self, log: str, scope: str, after: int) -> list[dict[str, Any]]:
        self.reads.append(after)
        return [
            {**saved, "id": str(entry_id)}
            for name, where, entry_id, saved in self.entries
            if (name, where) == (log, scope) and entry_id > after
        ]


async def test_session_logs_give_both_capabilities_from_two_methods() -> None:
    store = DictLogs()
    assert isinstance(store, SupportsSteering)
    first = await store.save_task_update("s", {"update_id": "u1"})
    assert await store.save_task_update("s", {"update_id": "u1"}) == first
    steering = await store.save_steering("s", {"event_id": "e1"})
    assert [e[0] for e in store.entries] == [SessionLogs.TASK_UPDATES, SessionLogs.STEERING]
    assert await store.list_task_updates("s", since_id=first) == []
    assert [e["id"] for e in await store.list_steering("s")] == [steering]
    assert store.reads == [int(first), 0]  # the cursor arrives parsed
    with pytest.raises(StoreRequestError, match="since_id"):
        await store.list_steering("s", since_id="latest")


async def test_session_logs_name_the_missing_method() -> None:
    class Unfinished(SessionLogs):
        pass

    with pytest.raises(NotImplementedError, match=r"Unfinished .* does not implement _append_log"):
        await Unfinished().save_steering("s", {})
    with pytest.raises(NotImplementedError, match="does not implement _read_log"):
        await Unfinished().list_task_updates("s")


def test_store_closed_error_names_the_store_and_masks_passwords() -> None:
    class Store:
        url = "postgresql://app:s3cret@db.internal:5432/flows"

    error = StoreClosedError(Store())
    assert error.store_name == "Store at postgresql://app:***@db.internal:5432/flows"
    assert "s3cret" not in str(error) and "aclose() was called" in str(error)
    assert StoreClosedError(object()).store_name == "object"

    class Odd:
        url = "redis://:s3cret@[::1"  # not a parsable URL (unclosed `[`): masked all the same

    assert StoreClosedError(Odd()).store_name == "Odd at redis://:***@[::1"


# -- closing the in-memory store ---------------------------------------------------------------


async def test_in_memory_store_closes_once_and_then_refuses_work() -> None:
    async with state_module.InMemoryStateStore() as store:
        await store.save_event(event())
        await store.save_memory_state("k", {"x": 1})
    with pytest.raises(StoreClosedError, match=r"^InMemoryStateStore is closed"):
        await store.load_history("t")
    with pytest.raises(StoreClosedError):
        await store.list_steering("s")
    await store.aclose()  # idempotent
    assert store._events == {} and store._memory == {}  # the data is released
