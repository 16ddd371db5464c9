"""The store passes the kernel's state-store conformance suite with every capability."""

from __future__ import annotations

from pathlib import Path

import pytest
from penguiflow_plugin_template import JsonLinesStateStore

from penguiflow.plugins import resolve_driver
from penguiflow.state import CAPABILITIES, StateStore, StoreClosedError, capabilities
from penguiflow.testing import StateStoreConformance, run_async


class TestJsonLinesStore(StateStoreConformance):
    # Every capability the kernel defines: the suite fails if one goes missing.
    required_capabilities = frozenset(CAPABILITIES)

    async def make_store(self) -> StateStore:
        folder = self.new_folder()  # under pytest's tmp_path, removed with it
        store: StateStore = resolve_driver("state_store", f"jsonl://{folder}/state.jsonl")
        return store

    async def reopen_store(self, store: StateStore) -> StateStore:
        assert isinstance(store, JsonLinesStateStore)
        return JsonLinesStateStore(store.url)


def test_bad_url_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match=r"expected jsonl:///absolute/path/events\.jsonl"):
        JsonLinesStateStore("jsonl://")


def test_every_capability_survives_a_reopen(tmp_path: Path) -> None:
    url = f"jsonl://{tmp_path}/state.jsonl"

    async def scenario() -> None:
        async with JsonLinesStateStore(url) as store:
            assert capabilities(store) == frozenset(CAPABILITIES)
            await store.save_task("s", {"task_id": "a", "status": "running"})
            first = await store.save_steering("s", {"event_id": "e1"})
            await store.save_planner_event("t", {"event": "step"})
            ref = await store.put_artifact("k", b"\x00\xff")
        with pytest.raises(StoreClosedError, match="JsonLinesStateStore at jsonl://"):
            await store.list_tasks("s")
        async with JsonLinesStateStore(url) as reopened:
            assert await reopened.list_tasks("s") == [{"task_id": "a", "status": "running"}]
            assert await reopened.save_steering("s", {"event_id": "e1"}) == first
            second = await reopened.save_steering("s", {"event_id": "e2"})
            assert int(second) > int(first)
            assert [e["event_id"] for e in await reopened.list_steering("s", since_id=first)] == [
                "e2"
            ]
            assert await reopened.list_planner_events("t") == [{"event": "step"}]
            assert await reopened.get_artifact(ref) == b"\x00\xff"

    run_async(scenario)


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"

    async def scenario() -> None:
        async with JsonLinesStateStore(f"jsonl://{path}") as store:
            await store.save_memory_state("k", {"turns": 1})
        with path.open("a", encoding="utf-8") as handle:
            handle.write('{"type": "memory", "key": "k", "val')  # a crash mid-write
        async with JsonLinesStateStore(f"jsonl://{path}") as reopened:
            assert await reopened.load_memory_state("k") == {"turns": 1}

    run_async(scenario)
