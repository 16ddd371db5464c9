"""Conformance suite for state-store drivers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..state import RemoteBinding, StateStore, StoredEvent, capabilities
from ._support import close_quietly, run_with_resource

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
    """

    required_capabilities: frozenset[str] = frozenset()

    async def make_store(self) -> StateStore:
        raise NotImplementedError("implement make_store() to return a fresh, empty store")

    async def reopen_store(self, store: StateStore) -> StateStore:
        raise NotImplementedError

    async def close_store(self, store: StateStore) -> None:
        await close_quietly(store)

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
