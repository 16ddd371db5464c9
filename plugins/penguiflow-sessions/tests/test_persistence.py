"""Persistence: the in-memory store, the kernel-store adapter, and a session that survives a
restart on sqlite://, redis:// and postgresql:// (hydrate, then subscribe from the last
cursor)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from penguiflow_sessions import persistence
from penguiflow_sessions.models import (
    ContextPatch,
    MergeStrategy,
    StateUpdate,
    TaskContextSnapshot,
    TaskStatus,
    TaskType,
    UpdateType,
)
from penguiflow_sessions.persistence import (
    InMemorySessionStateStore,
    StateStoreSessionAdapter,
)
from penguiflow_sessions.session import StreamingSession, TaskRuntime
from penguiflow_sessions.steering import SteeringEvent, SteeringEventType

from penguiflow.errors import ConfigurationError, InvalidTypeError
from penguiflow.state.sqlite import SQLiteStateStore


def test_public_names() -> None:
    for name in persistence.__all__:
        assert hasattr(persistence, name)


async def test_in_memory_cursor_is_exclusive_and_bad_cursor_is_refused() -> None:
    store = InMemorySessionStateStore()
    updates = [
        StateUpdate(session_id="s", task_id="t", update_type=UpdateType.THINKING, content=i)
        for i in range(3)
    ]
    for update in updates:
        await store.save_update(update)
    after = await store.list_updates("s", since_id=updates[0].update_id, limit=None)
    assert [u.content for u in after] == [1, 2]
    with pytest.raises(ConfigurationError, match="since_id"):
        await store.list_updates("s", since_id="not-a-cursor")


def test_adapter_names_missing_capabilities() -> None:
    class Bare:
        async def save_event(self, event: Any) -> None: ...

    with pytest.raises(InvalidTypeError, match="save_task_update"):
        StateStoreSessionAdapter(Bare())


def _redis_url() -> str | None:
    return os.environ.get("PENGUIFLOW_REDIS_URL")


def _postgres_url() -> str | None:
    return os.environ.get("PENGUIFLOW_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A factory of kernel stores over one database: each call is a new process's store."""
    opened: list[Any] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sessions.db'}"

        def factory() -> Any:
            store = SQLiteStateStore(url)
            opened.append(store)
            return store

    elif request.param == "postgres":
        pg_url = _postgres_url()
        if pg_url is None:
            if os.environ.get("CI") == "true":
                pytest.fail("PENGUIFLOW_POSTGRES_URL is not set under CI")
            pytest.skip(
                "set PENGUIFLOW_POSTGRES_URL (scripts/services/postgres.sh) for PostgreSQL tests"
            )
        from penguiflow_postgres.store import PostgresStateStore

        # A schema of its own: runs side by side never see each other's sessions.
        schema = f"pf_sessions_test_{secrets.token_hex(4)}"

        def factory() -> Any:
            store = PostgresStateStore(pg_url, schema=schema)
            opened.append(store)
            return store

    else:
        url = _redis_url()
        if url is None:
            if os.environ.get("CI") == "true":
                pytest.fail("PENGUIFLOW_REDIS_URL is not set under CI")
            pytest.skip("set PENGUIFLOW_REDIS_URL (scripts/services/redis.sh) for Redis tests")
        from penguiflow_redis.store import RedisStateStore

        prefix = f"pf-sessions-test-{secrets.token_hex(4)}"

        def factory() -> Any:
            store = RedisStateStore(url, prefix=prefix)
            opened.append(store)
            return store

    yield factory
    for store in opened:
        await store.aclose()


async def test_session_survives_restart_and_resumes_from_cursor(make_store: Any) -> None:
    # Process 1: a task runs, a client reads part of the stream and notes its cursor.
    first = StreamingSession("conv", state_store=make_store())

    async def work(rt: TaskRuntime) -> str:
        for i in range(3):
            rt.emit_update(UpdateType.PROGRESS, {"i": i})
        return "done"

    await first.run_task(work, task_id="bg", task_type=TaskType.BACKGROUND)
    steer_target = await first.spawn_task(_forever, task_id="fg")
    injected = SteeringEvent(
        session_id="conv",
        task_id=steer_target,
        event_type=SteeringEventType.INJECT_CONTEXT,
        payload={"text": "also check prices"},
    )
    assert await first.steer(injected)
    seen = await first.list_updates(limit=None)
    cursor = seen[3].update_id
    await first.close()
    everything = [u.update_id for u in seen]

    # Process 2: a new session over the same database.
    second = StreamingSession("conv", state_store=make_store())
    await second.hydrate()
    tasks = {t.task_id: t for t in await second.list_tasks()}
    assert tasks["bg"].status is TaskStatus.COMPLETE and tasks["bg"].result == "done"
    assert tasks["fg"].status is TaskStatus.CANCELLED
    # The duplicate of an event taken before the restart is still refused.
    from penguiflow_sessions._errors import DuplicateSteeringEventError

    with pytest.raises(DuplicateSteeringEventError):
        await second.steer(injected)

    stream = await second.subscribe(since_id=cursor)

    async def new_work(rt: TaskRuntime) -> str:
        rt.emit_update(UpdateType.THINKING, "after restart")
        return "again"

    await second.run_task(new_work, task_id="bg2", task_type=TaskType.BACKGROUND)
    stored = [u.update_id for u in await second.list_updates(limit=None)]
    got: list[str] = []
    async with asyncio.timeout(10):
        async for update in stream:
            got.append(update.update_id)
            if update.update_id == stored[-1]:
                break
    expected = stored[stored.index(cursor) + 1 :]
    assert got == expected
    assert set(everything[4:]) <= set(got)  # nothing from before the restart is lost
    await second.close()


async def _forever(rt: TaskRuntime) -> None:
    await asyncio.Event().wait()


async def test_state_store_url_is_opened_and_closed_by_the_session(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'owned.db'}"
    async with StreamingSession("u", state_store=url) as session:
        await session.run_task(_done)
    reopened = StreamingSession("u", state_store=url)
    await reopened.hydrate()
    assert len(await reopened.list_tasks()) == 1
    await reopened.close()


async def _done(rt: TaskRuntime) -> str:
    return "ok"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_live_tool_context_is_left_out_of_the_saved_task(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A foreground snapshot shares live objects (the task service, futures): saving the task
    # used to fail ("cannot pickle '_asyncio.Future'") and the task was never stored.
    store: Any
    if kind == "memory":
        store = InMemorySessionStateStore()
    else:
        store = SQLiteStateStore(f"sqlite:///{tmp_path / 'live.db'}")
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    service = object()
    live = {"tasks_service": service, "done": future, "user": "ann", "ids": (1, 2)}
    snapshot = TaskContextSnapshot(session_id="live", task_id="given", tool_context=live)
    session = StreamingSession("live", state_store=store)

    async def work(rt: TaskRuntime) -> str:
        # The running task keeps its live context.
        assert rt.context_snapshot.tool_context["done"] is future
        assert rt.context_snapshot.tool_context["tasks_service"] is service
        return "ok"

    with caplog.at_level(logging.ERROR, logger="penguiflow_sessions"):
        await session.run_task(work, task_id="fg", context_snapshot=snapshot)
    assert not [r for r in caplog.records if "saving task" in r.getMessage()]
    running = await session.get_task("fg")
    assert running is not None and running.context_snapshot.tool_context["done"] is future
    await session.close()

    reopened = StreamingSession("live", state_store=store)
    await reopened.hydrate()
    saved = await reopened.get_task("fg")
    assert saved is not None and saved.status is TaskStatus.COMPLETE and saved.result == "ok"
    assert saved.context_snapshot.tool_context == {"user": "ann", "ids": [1, 2]}
    await reopened.close()
    if kind == "sqlite":
        await store.aclose()


async def test_text_with_a_nul_character_is_saved_and_replayed(make_store: Any) -> None:
    # Model and tool output can carry U+0000; the update must still be stored and replayed
    # (PostgreSQL's jsonb refuses it: penguiflow-postgres escapes it, reversibly).
    session = StreamingSession("nul", state_store=make_store())

    async def work(rt: TaskRuntime) -> str:
        rt.emit_update(UpdateType.THINKING, "before\x00after")
        return "done\x00"

    await session.run_task(work, task_id="t")
    contents = [u.content for u in await session.list_updates(limit=None)]
    assert "before\x00after" in contents
    task = await session.get_task("t")
    await session.close()
    assert task is not None and task.result == "done\x00"
    reopened = StreamingSession("nul", state_store=make_store())
    await reopened.hydrate()
    saved = await reopened.get_task("t")
    assert saved is not None and saved.result == "done\x00"
    await reopened.close()


# -- the session context survives a restart ----------------------------------------------------


async def _build_context(session: StreamingSession) -> tuple[str, dict[str, Any]]:
    """Give `session` a context of every kind (llm and tool context with a live object, a
    merged background result, a patch awaiting approval); returns the pending patch id and
    what a restart must bring back."""
    live = asyncio.get_running_loop().create_future()
    session.update_context(llm_context={"customer": "acme"}, tool_context={"user": "ann"})
    session.update_context(tool_context={"user": "ann", "ids": (1, 2), "done": live})
    await session.apply_context_patch(
        patch=ContextPatch(task_id="merged", digest=["merged", "findings"], facts={"n": 1})
    )
    patch_id = await session.apply_context_patch(
        patch=ContextPatch(task_id="gated", digest=["gated findings"]),
        strategy=MergeStrategy.HUMAN_GATED,
    )
    assert patch_id is not None
    live.cancel()
    expected = {
        "version": session.context_version,
        "hash": session.context_hash,
        "context": ({"customer": "acme"}, {"user": "ann", "ids": [1, 2]}),
    }
    return patch_id, expected


async def _check_restored(session: StreamingSession, patch_id: str, expected: Any) -> None:
    await session.hydrate()
    assert session.get_context() == expected["context"]  # the live future was left out
    assert session.context_version == expected["version"] == 2
    assert session.context_hash == expected["hash"] is not None
    results = session.get_background_results()
    assert results["merged"].summary == "merged findings" and results["merged"].facts == {"n": 1}
    assert list(session.pending_patches) == [patch_id]
    assert session.pending_patches[patch_id].strategy is MergeStrategy.HUMAN_GATED
    # The patch approved after the restart merges, and that is saved in turn.
    assert await session.apply_pending_patch(patch_id=patch_id)
    assert session.get_background_results()["gated"].summary == "gated findings"


async def test_context_is_saved_and_restored_by_the_in_memory_store() -> None:
    store = InMemorySessionStateStore()
    first = StreamingSession("ctx", state_store=store)
    patch_id, expected = await _build_context(first)
    await first.close()

    second = StreamingSession("ctx", state_store=store)
    await _check_restored(second, patch_id, expected)
    await second.close()
    third = StreamingSession("ctx", state_store=store)
    await third.hydrate()
    assert set(third.get_background_results()) == {"merged", "gated"}
    assert not third.pending_patches
    await third.close()
    assert await store.load_context("other") is None


async def test_context_is_saved_and_restored_by_kernel_stores(make_store: Any) -> None:
    first = StreamingSession("ctx", state_store=make_store())
    patch_id, expected = await _build_context(first)
    await first.close()

    second = StreamingSession("ctx", state_store=make_store())
    await _check_restored(second, patch_id, expected)
    await second.close()
    third = StreamingSession("ctx", state_store=make_store())
    await third.hydrate()
    assert set(third.get_background_results()) == {"merged", "gated"}
    assert not third.pending_patches
    assert third.context_version == 2
    # Consuming results is a change too.
    assert await third.mark_background_consumed(task_ids=["merged"]) == 1
    await third.close()
    fourth = StreamingSession("ctx", state_store=make_store())
    await fourth.hydrate()
    assert set(fourth.get_background_results()) == {"gated"}
    await fourth.close()


async def test_context_saves_land_in_order_and_the_newest_wins() -> None:
    # Synchronous update_context calls queue saves; a slow store must still end on the last.
    class SlowStore(InMemorySessionStateStore):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()
            self.started = asyncio.Event()
            self.saved_versions: list[int] = []

        async def save_context(self, session_id: str, context: dict[str, Any]) -> None:
            self.started.set()
            await self.release.wait()
            self.saved_versions.append(context["version"])
            await super().save_context(session_id, context)

    store = SlowStore()
    session = StreamingSession("order", state_store=store)
    session.update_context(llm_context={"n": 1})
    await store.started.wait()  # the first save is in flight
    for n in range(2, 6):
        session.update_context(llm_context={"n": n})
    store.release.set()
    await session.close()  # waits for the queued save
    assert store.saved_versions == [1, 5]  # in order, the stale ones in between skipped
    saved = await store.load_context("order")
    assert saved is not None and saved["llm_context"] == {"n": 5}


async def test_a_context_changed_before_hydrate_is_kept() -> None:
    store = InMemorySessionStateStore()
    first = StreamingSession("early", state_store=store)
    first.update_context(llm_context={"old": True})
    await first.close()
    second = StreamingSession("early", state_store=store)
    second.update_context(llm_context={"new": True})
    await second.hydrate()
    assert second.get_context()[0] == {"new": True}
    await second.close()


async def test_an_unreadable_saved_context_is_logged_and_tasks_still_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemorySessionStateStore()
    first = StreamingSession("bad", state_store=store)
    await first.run_task(_done, task_id="t")
    await first.close()
    await store.save_context("bad", {"format": 99})
    second = StreamingSession("bad", state_store=store)
    with caplog.at_level(logging.ERROR, logger="penguiflow_sessions"):
        await second.hydrate()
    assert [t.task_id for t in await second.list_tasks()] == ["t"]
    assert second.context_version == 0
    assert any("format 99" in r.getMessage() for r in caplog.records)
    await second.close()


async def test_a_kernel_store_without_memory_state_keeps_the_context_in_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from penguiflow.state.in_memory import InMemoryStateStore

    inner = InMemoryStateStore()

    class NoMemory:
        # Only the capabilities the adapter requires.
        def __getattr__(self, name: str) -> Any:
            if name in persistence._KERNEL_METHODS:
                return getattr(inner, name)
            raise AttributeError(name)

    adapter = StateStoreSessionAdapter(NoMemory())
    with caplog.at_level(logging.WARNING, logger="penguiflow_sessions"):
        await adapter.save_context("s", {"format": 1})
        await adapter.save_context("s", {"format": 1})
    assert await adapter.load_context("s") is None
    warnings = [r for r in caplog.records if "memory_state" in r.getMessage()]
    assert len(warnings) == 1
