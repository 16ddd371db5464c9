"""Conformance suite for state-store drivers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..state import RemoteBinding, StateStore, StoredEvent
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
    suite can check that a reopened store sees earlier writes.
    """

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
