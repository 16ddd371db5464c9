"""Conformance suite for state-store drivers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ..errors import PenguiFlowError, describe_exception
from ..resources import aclose_resource
from ..state import (
    AuditRecord,
    RemoteBinding,
    StateStore,
    StoredEvent,
    StoreRequestError,
    capabilities,
)
from ._support import run_with_resource

__all__ = ["StateStoreConformance"]


def _event(trace_id: str, index: int, kind: str = "node_success") -> StoredEvent:
    return StoredEvent(
        trace_id=trace_id,
        ts=1_700_000_000.0 + index,
        kind=kind,
        node_name=f"node{index}",
        node_id=f"id{index}",
        payload={"event": kind, "index": index},
    )


class StateStoreConformance:
    """Subclass as `class TestMyStore(StateStoreConformance)` and implement `make_store`.

    Durable stores also implement `reopen_store` (a new instance over the same data) so the
    suite can check that a reopened store sees earlier writes. Optional capabilities
    (`penguiflow.state.capabilities`) are checked when the store has them and skipped
    otherwise; list the ones your store must have in `required_capabilities`.

    Every store must close with an idempotent `aclose()` and `async with`, and refuse work
    once closed with a `PenguiFlowError` whose message names the store's class
    (`penguiflow.state.StoreClosedError` does both).

    A file-backed store keeps its files under `self.tmp_path`, a fresh folder per test that
    pytest removes with its other temporary folders (see `new_folder()`).
    """

    required_capabilities: frozenset[str] = frozenset()
    tmp_path: Path

    @pytest.fixture(autouse=True)
    def _conformance_tmp_path(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def new_folder(self) -> Path:
        """An empty folder under `self.tmp_path`, a new one per call (for `make_store`)."""
        folder = self.tmp_path / f"store-{sum(1 for _ in self.tmp_path.iterdir())}"
        folder.mkdir()
        return folder

    async def make_store(self) -> StateStore:
        raise NotImplementedError("implement make_store() to return a fresh, empty store")

    async def reopen_store(self, store: StateStore) -> StateStore:
        raise NotImplementedError

    async def close_store(self, store: StateStore) -> None:
        await aclose_resource(store)

    def _run(self, scenario: Any) -> None:
        run_with_resource(self.make_store, self.close_store, scenario)

    def test_satisfies_the_protocol(self) -> None:
        async def scenario(store: StateStore) -> None:
            assert isinstance(store, StateStore)

        self._run(scenario)

    def test_history_is_ordered_and_per_trace(self) -> None:
        async def scenario(store: StateStore) -> None:
            for index in (2, 0, 1):
                await store.save_event(_event("trace-a", index))
            await store.save_event(_event("trace-b", 9))
            history = await store.load_history("trace-a")
            assert [e.payload["index"] for e in history] == [0, 1, 2]
            assert [e.kind for e in await store.load_history("trace-b")] == ["node_success"]
            assert list(await store.load_history("unknown-trace")) == []

        self._run(scenario)

    def test_events_round_trip_intact(self) -> None:
        async def scenario(store: StateStore) -> None:
            original = _event("trace-r", 3, kind="node_failed")
            await store.save_event(original)
            (loaded,) = await store.load_history("trace-r")
            assert loaded.trace_id == original.trace_id and loaded.kind == original.kind
            assert loaded.ts == pytest.approx(original.ts)
            assert loaded.node_name == original.node_name and loaded.node_id == original.node_id
            assert loaded.payload == original.payload

        self._run(scenario)

    def test_saving_the_same_event_twice_stores_it_once(self) -> None:
        async def scenario(store: StateStore) -> None:
            event = _event("trace-i", 1)
            await store.save_event(event)
            await store.save_event(_event("trace-i", 1))
            assert len(await store.load_history("trace-i")) == 1

        self._run(scenario)

    def test_concurrent_writers_lose_nothing(self) -> None:
        async def scenario(store: StateStore) -> None:
            await asyncio.gather(*(store.save_event(_event("trace-c", i)) for i in range(40)))
            history = await store.load_history("trace-c")
            assert sorted(e.payload["index"] for e in history) == list(range(40))

        self._run(scenario)

    def test_remote_bindings_are_accepted(self) -> None:
        async def scenario(store: StateStore) -> None:
            binding = RemoteBinding("trace-x", "ctx", "task", "http://agent", remote_skill="s")
            await store.save_remote_binding(binding)
            await store.save_remote_binding(binding)  # idempotent
            find = getattr(store, "find_binding", None)
            if find is not None:
                found = await find(trace_id="trace-x")
                assert found is not None and found.task_id == "task"

        self._run(scenario)

    def test_a_reopened_store_sees_earlier_writes(self) -> None:
        async def scenario(store: StateStore) -> None:
            await store.save_event(_event("trace-d", 0))
            try:
                reopened = await self.reopen_store(store)
            except NotImplementedError:
                pytest.skip("not a durable store (reopen_store not implemented)")
            try:
                assert [e.payload["index"] for e in await reopened.load_history("trace-d")] == [0]
            finally:
                if reopened is not store:
                    await self.close_store(reopened)

        self._run(scenario)

    def _needs(self, store: StateStore, capability: str) -> None:
        if capability not in capabilities(store):
            if capability in self.required_capabilities:
                raise AssertionError(f"the store lacks the required capability {capability!r}")
            pytest.skip(f"store has no {capability!r} capability")

    def test_required_capabilities_are_present(self) -> None:
        async def scenario(store: StateStore) -> None:
            missing = self.required_capabilities - capabilities(store)
            assert not missing, f"missing capabilities: {sorted(missing)}"

        self._run(scenario)

    def test_planner_tokens_are_single_use(self) -> None:
        async def scenario(store: Any) -> None:
            self._needs(store, "planner_state")
            await store.save_planner_state("tok-1", {"step": 3, "budget": {"hops": 2}})
            assert await store.load_planner_state("tok-1") == {"step": 3, "budget": {"hops": 2}}
            winners = await asyncio.gather(
                *(store.consume_planner_state("tok-1") for _ in range(5))
            )
            assert [w for w in winners if w is not None] == [{"step": 3, "budget": {"hops": 2}}]
            assert await store.consume_planner_state("tok-1") is None
            assert await store.load_planner_state("never-saved") is None

        self._run(scenario)

    def test_tasks_upsert_and_updates_follow_the_cursor(self) -> None:
        async def scenario(store: Any) -> None:
            self._needs(store, "tasks")
            await store.save_task("s1", {"task_id": "a", "status": "running"})
            await store.save_task("s1", {"task_id": "a", "status": "done"})
            await store.save_task("s2", {"task_id": "b", "status": "running"})
            assert await store.list_tasks("s1") == [{"task_id": "a", "status": "done"}]
            first = await store.save_task_update("s1", {"update_id": "u1", "text": "one"})
            again = await store.save_task_update("s1", {"update_id": "u1", "text": "one"})
            second = await store.save_task_update("s1", {"text": "two"})
            assert first == again and int(second) > int(first)
            everything = await store.list_task_updates("s1")
            assert [u["text"] for u in everything] == ["one", "two"]
            after_first = await store.list_task_updates("s1", since_id=first)
            assert [u["text"] for u in after_first] == ["two"]
            assert await store.list_task_updates("s1", since_id=second) == []
            assert await store.list_task_updates("s2") == []

        self._run(scenario)

    def test_steering_log_is_ordered_idempotent_and_exclusive(self) -> None:
        async def scenario(store: Any) -> None:
            self._needs(store, "steering")
            ids = [await store.save_steering("s", {"event_id": f"e{i}", "n": i}) for i in range(3)]
            assert ids == sorted(ids, key=int) and len(set(ids)) == 3
            assert await store.save_steering("s", {"event_id": "e1", "n": 1}) == ids[1]
            assert [e["n"] for e in await store.list_steering("s", since_id=ids[0])] == [1, 2]
            assert [e["id"] for e in await store.list_steering("s")] == ids
            concurrent = await asyncio.gather(
                *(store.save_steering("c", {"n": i}) for i in range(20))
            )
            assert len(set(concurrent)) == 20
            assert len(await store.list_steering("c")) == 20

        self._run(scenario)

    def test_any_text_round_trips_intact(self) -> None:
        # Model and tool output may carry any character: U+0000 (which PostgreSQL's jsonb
        # refuses), private-use characters, astral ones, in keys and values alike. A store
        # that cannot write one would lose the whole update, task or event holding it.
        odd = 'nul\x00 mark\ue000\ue001\ue002 emoji\U0001f427 quote" back\\ tab\t'
        value = {odd: [odd, {"k": odd}], "plain": "x", "\ue000lead": "\ue000\x00"}

        async def scenario(store: Any) -> None:
            have = capabilities(store)
            if "tasks" in have:
                await store.save_task("s", {"task_id": "t", **value})
                assert await store.list_tasks("s") == [{"task_id": "t", **value}]
                cursor = await store.save_task_update("s", {"update_id": "u", **value})
                (update,) = await store.list_task_updates("s")
                assert update["id"] == cursor
                assert {k: v for k, v in update.items() if k != "id"} == {"update_id": "u", **value}
            if "planner_state" in have:
                await store.save_planner_state("tok", value)
                assert await store.consume_planner_state("tok") == value
            if "memory_state" in have:
                await store.save_memory_state("key", value)
                assert await store.load_memory_state("key") == value
            await store.save_event(StoredEvent("odd", 1.0, "node_success", "n", "n", value))
            (event,) = await store.load_history("odd")
            assert event.payload == value

        self._run(scenario)

    def test_trajectories_replace_and_read_back(self) -> None:
        async def scenario(store: Any) -> None:
            self._needs(store, "trajectories")
            await store.save_trajectory("t", {"steps": [1]})
            await store.save_trajectory("t", {"steps": [1, 2]})
            assert await store.get_trajectory("t") == {"steps": [1, 2]}
            assert await store.get_trajectory("missing") is None

        self._run(scenario)

    def test_a_reopened_store_keeps_pause_tokens_and_logs(self) -> None:
        async def scenario(store: Any) -> None:
            self._needs(store, "planner_state")
            await store.save_planner_state("durable", {"x": 1})
            try:
                reopened: Any = await self.reopen_store(store)
            except NotImplementedError:
                pytest.skip("not a durable store (reopen_store not implemented)")
            try:
                assert await reopened.consume_planner_state("durable") == {"x": 1}
                assert await store.load_planner_state("durable") is None
            finally:
                if reopened is not store:
                    await self.close_store(reopened)

        self._run(scenario)

    def test_planner_events_are_kept_per_trace_in_order(self) -> None:
        async def scenario(store: Any) -> None:
            self._needs(store, "planner_events")
            for step in range(3):
                await store.save_planner_event("pe-a", {"event": "step", "step": step})
            await store.save_planner_event("pe-b", {"event": "tool_call"})
            listed = await store.list_planner_events("pe-a")
            assert [e["step"] for e in listed] == [0, 1, 2]
            assert [e["event"] for e in await store.list_planner_events("pe-b")] == ["tool_call"]
            assert list(await store.list_planner_events("pe-none")) == []

        self._run(scenario)

    def test_artifacts_round_trip_by_reference(self) -> None:
        async def scenario(store: Any) -> None:
            self._needs(store, "artifacts")
            data = bytes(range(256))  # every byte value, so text encodings cannot pass
            ref = await store.put_artifact("report.bin", data, mime_type="application/pdf")
            assert isinstance(ref, str) and ref
            other = await store.put_artifact("notes.txt", b"notes")
            assert other != ref
            assert await store.get_artifact(ref) == data
            assert await store.get_artifact(other) == b"notes"
            assert await store.get_artifact("no-such-ref") is None

        self._run(scenario)

    def test_audit_records_are_kept_per_tenant_and_session(self) -> None:
        def audit(n: int, tenant: str | None, session: str | None, ts: float) -> AuditRecord:
            return AuditRecord(
                action="steering.cancel",
                source="session",
                tenant=tenant,
                user="ann",
                session_id=session,
                target=f"task-{n}",
                outcome="applied",
                details={"n": n, "nested": {"list": [1, "two", None, True]}},
                trace_id="t" * 32,
                ts=ts,
                id=f"rec-{n}",
            )

        async def scenario(store: Any) -> None:
            self._needs(store, "audit")
            base = 1_800_000_000.0
            # Saved out of time order: listing orders by ts, then save order (n=3 and n=4
            # share a ts and keep their save order).
            plan = [(2, "acme", "s1", base + 2), (0, "acme", "s1", base),
                    (1, "acme", "s2", base + 1), (3, "acme", "s1", base + 3),
                    (4, "acme", "s1", base + 3), (5, "globex", "s1", base + 1),
                    (6, None, None, base + 4)]  # fmt: skip
            for n, tenant, session, ts in plan:
                await store.save_audit(audit(n, tenant, session, ts))
            await store.save_audit(audit(0, "acme", "s1", base))  # saved again: kept once
            listed = await store.list_audit("acme")
            assert [r.id for r in listed] == ["rec-0", "rec-1", "rec-2", "rec-3", "rec-4"]
            assert listed[0] == audit(0, "acme", "s1", base)  # every field round-trips
            in_s1 = await store.list_audit("acme", session_id="s1")
            assert [r.id for r in in_s1] == ["rec-0", "rec-2", "rec-3", "rec-4"]
            recent = await store.list_audit("acme", session_id="s1", since=base + 2, limit=2)
            assert [r.id for r in recent] == ["rec-3", "rec-4"]  # the most recent two
            assert [r.id for r in await store.list_audit("acme", since=base + 2)] == [
                "rec-2", "rec-3", "rec-4"]  # fmt: skip
            # One tenant never sees another's records; None is "no tenant", not "all".
            assert [r.id for r in await store.list_audit("globex")] == ["rec-5"]
            assert [r.id for r in await store.list_audit(None)] == ["rec-6"]
            assert list(await store.list_audit("nobody")) == []
            # Ids that hold a store's separators (or U+0000) name nobody else's records.
            odd = [("a:b", "c"), ("a", "b:c"), ("a%3Ab", "c"), ("nul\x00t", "s\x00")]
            for n, (tenant, session) in enumerate(odd, start=10):
                await store.save_audit(audit(n, tenant, session, base))
            for n, (tenant, session) in enumerate(odd, start=10):
                assert [r.id for r in await store.list_audit(tenant)] == [f"rec-{n}"]
                found = await store.list_audit(tenant, session_id=session)
                assert [(r.tenant, r.session_id) for r in found] == [(tenant, session)]
            for bad in ({"limit": 0}, {"limit": -1}, {"since": float("nan")}, {"since": "x"}):
                with pytest.raises(StoreRequestError):
                    await store.list_audit("acme", **bad)

        self._run(scenario)

    def test_a_reopened_store_keeps_audit_records(self) -> None:
        async def scenario(store: Any) -> None:
            self._needs(store, "audit")
            await store.save_audit(AuditRecord(action="planner.pause", source="planner",
                                               tenant="acme", id="kept"))  # fmt: skip
            try:
                reopened: Any = await self.reopen_store(store)
            except NotImplementedError:
                pytest.skip("not a durable store (reopen_store not implemented)")
            try:
                assert [r.id for r in await reopened.list_audit("acme")] == ["kept"]
            finally:
                if reopened is not store:
                    await self.close_store(reopened)

        self._run(scenario)

    # -- closing ---------------------------------------------------------------------------

    async def _aclose(self, store: StateStore) -> None:
        closer = getattr(store, "aclose", None)
        if closer is None:
            raise AssertionError(
                f"{type(store).__name__} has no aclose(): state stores close with an "
                "idempotent `async aclose()` (subclass penguiflow.resources.AsyncResource "
                "for `async with`)"
            )
        await closer()

    async def _assert_refuses_work(self, store: Any) -> None:
        """Every kind of call the store offers fails, naming the store, once it is closed."""
        calls: list[tuple[str, Any]] = [
            ("save_event", lambda: store.save_event(_event("closed", 0))),
            ("load_history", lambda: store.load_history("closed")),
            ("save_remote_binding",
             lambda: store.save_remote_binding(RemoteBinding("closed", None, "t", "u"))),
        ]  # fmt: skip
        offered = capabilities(store)
        optional: dict[str, tuple[str, Any]] = {
            "planner_state": ("load_planner_state", lambda: store.load_planner_state("x")),
            "memory_state": ("load_memory_state", lambda: store.load_memory_state("x")),
            "tasks": ("list_task_updates", lambda: store.list_task_updates("x")),
            "steering": ("save_steering", lambda: store.save_steering("x", {"n": 1})),
            "trajectories": ("get_trajectory", lambda: store.get_trajectory("x")),
            "planner_events": ("list_planner_events", lambda: store.list_planner_events("x")),
            "artifacts": ("get_artifact", lambda: store.get_artifact("x")),
            "conversation_bindings": ("list_bindings", lambda: store.list_bindings("x")),
            "audit": ("list_audit", lambda: store.list_audit("x")),
        }
        calls += [call for name, call in optional.items() if name in offered]
        for method, call in calls:
            try:
                await call()
            except PenguiFlowError as error:
                text = describe_exception(error)
                assert type(store).__name__ in text, (
                    f"the error {method}() raised on a closed store should name the store "
                    f"({type(store).__name__}); it says: {text}"
                )
            else:
                raise AssertionError(
                    f"{method}() worked on a closed {type(store).__name__}: a closed store "
                    "must refuse work with a PenguiFlowError (raise "
                    "penguiflow.state.StoreClosedError(self))"
                )

    def test_aclose_is_idempotent(self) -> None:
        async def scenario(store: StateStore) -> None:
            await store.save_event(_event("trace-close", 0))
            await self._aclose(store)
            await self._aclose(store)

        self._run(scenario)

    def test_a_closed_store_refuses_work(self) -> None:
        async def scenario(store: StateStore) -> None:
            await store.save_event(_event("trace-refuse", 0))
            await self._aclose(store)
            await self._assert_refuses_work(store)

        self._run(scenario)

    def test_async_with_returns_the_store_and_closes_it(self) -> None:
        async def scenario(store: Any) -> None:
            if not hasattr(store, "__aenter__"):
                raise AssertionError(
                    f"{type(store).__name__} does not support `async with`: subclass "
                    "penguiflow.resources.AsyncResource (or define __aenter__/__aexit__)"
                )
            async with store as entered:
                assert entered is store, "`async with store as s` must give the store itself"
                await store.save_event(_event("trace-with", 0))
            await self._assert_refuses_work(store)

        self._run(scenario)
