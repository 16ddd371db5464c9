"""StreamingSession: tasks, updates (persist before publish), steering, cancel, limits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from penguiflow_sessions import session as session_module
from penguiflow_sessions.manager import SessionManager
from penguiflow_sessions.models import (
    ContextPatch,
    MergeStrategy,
    SessionLimits,
    StateUpdate,
    TaskResult,
    TaskStatus,
    TaskType,
    UpdateType,
)
from penguiflow_sessions.persistence import InMemorySessionStateStore
from penguiflow_sessions.session import (
    StreamingSession,
    TaskLimitExceededError,
    TaskRuntime,
    TaskTimeoutError,
)
from penguiflow_sessions.steering import (
    SteeringCancelled,
    SteeringEvent,
    SteeringEventType,
    SteeringValidationError,
)

from penguiflow.errors import PenguiFlowError, UnknownNameError, UsageError


def test_public_names() -> None:
    for name in session_module.__all__:
        assert hasattr(session_module, name)


async def _wait_status(session: StreamingSession, task_id: str, status: TaskStatus) -> None:
    async with asyncio.timeout(5):
        while True:
            task = await session.get_task(task_id)
            if task is not None and task.status is status:
                return
            await asyncio.sleep(0)


def _event(session: StreamingSession, task_id: str, kind: SteeringEventType, **kw: Any) -> Any:
    return SteeringEvent(session_id=session.session_id, task_id=task_id, event_type=kind, **kw)


async def test_run_task_emits_status_result_in_order() -> None:
    async with StreamingSession("s1") as session:

        async def pipeline(rt: TaskRuntime) -> TaskResult:
            rt.emit_update(UpdateType.PROGRESS, {"step": 1})
            return TaskResult(payload={"answer": 42}, digest=["done"])

        result = await session.run_task(pipeline, description="t")
        assert result.payload == {"answer": 42}
        updates = await session.list_updates()
        kinds = [(u.update_type, (u.content or {}).get("reason")) for u in updates]
        assert kinds[0] == (UpdateType.STATUS_CHANGE, "created")
        assert (UpdateType.PROGRESS, None) in kinds
        assert kinds[-2][0] is UpdateType.RESULT
        assert kinds[-1] == (UpdateType.STATUS_CHANGE, "complete")
        ids = [int(u.update_id) for u in updates]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        task = (await session.list_tasks())[0]
        assert task.status is TaskStatus.COMPLETE and task.progress == {"step": 1}


async def test_every_published_update_is_already_persisted() -> None:
    """A live subscriber never sees an update the store lacks (PenguiFlow saved after)."""
    store = InMemorySessionStateStore()
    session = StreamingSession("s2", state_store=store)
    stream = await session.subscribe()
    release = asyncio.Event()

    async def pipeline(rt: TaskRuntime) -> str:
        for i in range(5):
            rt.emit_update(UpdateType.THINKING, {"i": i})
        await release.wait()
        return "ok"

    task_id = await session.spawn_task(pipeline)
    seen = 0
    async for update in stream:
        stored = await store.list_updates("s2", limit=None)
        assert update.update_id in {u.update_id for u in stored}
        seen += 1
        if update.update_type is UpdateType.THINKING and update.content == {"i": 4}:
            release.set()
        if update.update_type is UpdateType.STATUS_CHANGE and update.content["reason"] == (
            "complete"
        ):
            break
    assert seen >= 8
    assert (await session.get_task(task_id)).status is TaskStatus.COMPLETE  # type: ignore[union-attr]
    await session.close()


async def test_subscribe_replays_after_cursor_then_goes_live_without_gaps() -> None:
    async with StreamingSession("s3") as session:
        gate = asyncio.Event()

        async def pipeline(rt: TaskRuntime) -> str:
            rt.emit_update(UpdateType.THINKING, "a")
            rt.emit_update(UpdateType.THINKING, "b")
            await gate.wait()
            rt.emit_update(UpdateType.THINKING, "c")
            return "done"

        task_id = await session.spawn_task(pipeline)
        async with asyncio.timeout(5):
            while len(await session.list_updates(task_id=task_id)) < 4:
                await asyncio.sleep(0)
        before = await session.list_updates()
        cursor = before[1].update_id
        stream = await session.subscribe(since_id=cursor)
        gate.set()
        got: list[StateUpdate] = []
        async for update in stream:
            got.append(update)
            if (
                update.update_type is UpdateType.STATUS_CHANGE
                and update.content.get("reason") == "complete"
            ):
                break
        everything = await session.list_updates(limit=None)
        expected = [u.update_id for u in everything if int(u.update_id) > int(cursor)]
        assert [u.update_id for u in got] == expected


async def test_spawned_failure_is_recorded_logged_and_notified(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with StreamingSession("s4") as session:

        async def boom(rt: TaskRuntime) -> None:
            raise ValueError("kaput")

        task_id = await session.spawn_task(boom, task_type=TaskType.BACKGROUND)
        await _wait_status(session, task_id, TaskStatus.FAILED)
        async with asyncio.timeout(5):
            while not any(
                u.update_type is UpdateType.NOTIFICATION
                for u in await session.list_updates(task_id=task_id)
            ):
                await asyncio.sleep(0)
        updates = await session.list_updates(task_id=task_id)
        errors = [u for u in updates if u.update_type is UpdateType.ERROR]
        assert errors and errors[0].content == {"error": "kaput", "error_type": "ValueError"}
        assert any(
            u.update_type is UpdateType.NOTIFICATION and u.content["severity"] == "error"
            for u in updates
        )
    # Telemetry logs by default: a background failure is never silent.
    assert any(
        r.name == "penguiflow_sessions.telemetry" and "kaput" in r.getMessage()
        for r in caplog.records
    )


async def test_timeout_ends_failed_with_timeout_error() -> None:
    limits = SessionLimits(max_task_runtime_s=0.05)
    async with StreamingSession("s5", limits=limits) as session:

        async def slow(rt: TaskRuntime) -> None:
            await asyncio.Event().wait()

        with pytest.raises(TaskTimeoutError, match="max_task_runtime_s"):
            await session.run_task(slow)
        task = (await session.list_tasks())[0]
        assert task.status is TaskStatus.FAILED
        assert task.error is not None and task.error.startswith("timeout")
        assert isinstance(TaskTimeoutError("x"), TimeoutError | PenguiFlowError)


async def test_limits_count_active_tasks_only_and_refuse_without_change() -> None:
    limits = SessionLimits(max_tasks_per_session=1)
    async with StreamingSession("s6", limits=limits) as session:
        await session.run_task(lambda rt: _value("x"))
        gate = asyncio.Event()

        async def waiting(rt: TaskRuntime) -> str:
            await gate.wait()
            return "ok"

        await session.spawn_task(waiting)  # the finished task does not count
        with pytest.raises(TaskLimitExceededError, match="task_limit_exceeded"):
            await session.spawn_task(waiting)
        assert len(await session.list_tasks()) == 2
        gate.set()


async def _value(value: Any) -> Any:
    return value


async def test_unknown_ids_and_closed_session_errors() -> None:
    session = StreamingSession("s7")
    with pytest.raises(UnknownNameError, match="nope"):
        await session.cancel_task("nope")
    with pytest.raises(UnknownNameError):
        await session.spawn_task(lambda rt: _value(1), parent_task_id="missing")
    assert await session.list_tasks() == []
    await session.close()
    await session.close()  # idempotent
    with pytest.raises(UsageError, match="closed"):
        await session.spawn_task(lambda rt: _value(1))


async def test_steering_validation_duplicates_and_session_mismatch() -> None:
    async with StreamingSession("s8") as session:
        gate = asyncio.Event()

        async def waiting(rt: TaskRuntime) -> str:
            await gate.wait()
            return "ok"

        task_id = await session.spawn_task(waiting)
        event = _event(session, task_id, SteeringEventType.INJECT_CONTEXT, payload={"text": "hi"})
        assert await session.steer(event) is True
        with pytest.raises(UsageError, match=event.event_id):
            await session.steer(event)
        with pytest.raises(SteeringValidationError):
            await session.steer(_event(session, task_id, SteeringEventType.PRIORITIZE))
        with pytest.raises(UsageError, match="other"):
            await session.steer(
                SteeringEvent(
                    session_id="other", task_id=task_id, event_type=SteeringEventType.PAUSE
                )
            )
        inbox_events = session._inboxes[task_id].drain()
        assert [e.event_id for e in inbox_events] == [event.event_id]
        assert session._inboxes[task_id].drain() == []  # injections are delivered once
        gate.set()


async def test_cancel_cascades_to_cascade_children_not_isolate() -> None:
    async with StreamingSession("s9", limits=SessionLimits(max_concurrent_tasks=0)) as session:

        async def forever(rt: TaskRuntime) -> None:
            await asyncio.Event().wait()

        parent = await session.spawn_task(forever)
        child = await session.spawn_task(
            forever, task_type=TaskType.BACKGROUND, parent_task_id=parent
        )
        grandchild = await session.spawn_task(
            forever, task_type=TaskType.BACKGROUND, parent_task_id=child
        )
        isolated = await session.spawn_task(
            forever,
            task_type=TaskType.BACKGROUND,
            parent_task_id=parent,
            propagate_on_cancel="isolate",
        )
        await _wait_status(session, isolated, TaskStatus.RUNNING)
        assert await session.cancel_task(parent, reason="stop") is True
        for task_id in (parent, child, grandchild):
            await _wait_status(session, task_id, TaskStatus.CANCELLED)
        assert (await session.get_task(isolated)).status is TaskStatus.RUNNING  # type: ignore[union-attr]
        assert await session.cancel_task(parent) is False  # already ended: no change


async def test_run_task_cancelled_by_steering_raises_steering_cancelled() -> None:
    async with StreamingSession("s10") as session:
        started = asyncio.Event()

        async def forever(rt: TaskRuntime) -> None:
            started.set()
            await asyncio.Event().wait()

        runner = asyncio.create_task(session.run_task(forever, task_id="fg"))
        await started.wait()
        await session.cancel_task("fg", reason="user said stop")
        with pytest.raises(SteeringCancelled):
            await runner
        assert (await session.get_task("fg")).error == "user said stop"  # type: ignore[union-attr]


async def test_control_policy_parks_destructive_event_until_approved() -> None:
    async with StreamingSession("s11") as session:

        async def forever(rt: TaskRuntime) -> None:
            await asyncio.Event().wait()

        task_id = await session.spawn_task(forever)
        cancel = _event(session, task_id, SteeringEventType.CANCEL, source="agent")
        assert await session.steer(cancel) is False
        assert (await session.get_task(task_id)).status is not TaskStatus.CANCELLED  # type: ignore[union-attr]
        checkpoints = [
            u for u in await session.list_updates() if u.update_type is UpdateType.CHECKPOINT
        ]
        assert checkpoints[-1].content["resume_token"] == cancel.event_id
        approve = _event(
            session, task_id, SteeringEventType.APPROVE, payload={"resume_token": cancel.event_id}
        )
        assert await session.steer(approve) is True
        await _wait_status(session, task_id, TaskStatus.CANCELLED)


async def test_paused_task_keeps_inbox_for_approve_and_resumes() -> None:
    """PenguiFlow dropped the inbox when the run returned, so APPROVE was lost (#107)."""
    async with StreamingSession("s12") as session:

        async def pauses(rt: TaskRuntime) -> TaskResult:
            return TaskResult(payload="waiting", metadata={"paused": True})

        result = await session.run_task(pauses, task_id="fg")
        assert result.metadata["paused"] is True
        assert (await session.get_task("fg")).status is TaskStatus.PAUSED  # type: ignore[union-attr]
        approve = _event(session, "fg", SteeringEventType.APPROVE, payload={"resume_token": "t1"})
        assert await session.steer(approve) is True

        async def continues(rt: TaskRuntime) -> str:
            events = rt.steering.drain()
            return events[0].event_type.value

        final = await session.resume_task("fg", continues)
        assert final is not None and final.payload == "APPROVE"
        assert (await session.get_task("fg")).status is TaskStatus.COMPLETE  # type: ignore[union-attr]
        with pytest.raises(UsageError, match="not paused"):
            await session.resume_task("fg", continues)


async def test_human_gated_patch_approve_and_artifacts_stay_a_list() -> None:
    async with StreamingSession("s13") as session:
        artifacts = [{"node": "search", "field": "chart", "artifact": {"id": "a1"}}]

        async def work(rt: TaskRuntime) -> TaskResult:
            patch = ContextPatch(
                task_id=rt.state.task_id,
                digest=["found it"],
                artifacts=artifacts,
                source_context_version=rt.context_snapshot.context_version,
                source_context_hash=rt.context_snapshot.context_hash,
            )
            return TaskResult(payload="p", context_patch=patch)

        await session.run_task(
            work,
            task_type=TaskType.BACKGROUND,
            merge_strategy=MergeStrategy.HUMAN_GATED,
            task_id="bg",
        )
        (patch_id,) = session.pending_patches
        result = next(
            u
            for u in await session.list_updates(task_id="bg")
            if u.update_type is UpdateType.RESULT
        )
        assert result.content["patch_id"] == patch_id
        assert result.content["task_patch"]["artifacts"] == artifacts
        approve = _event(session, "bg", SteeringEventType.APPROVE, payload={"patch_id": patch_id})
        assert await session.steer(approve) is True
        assert session.pending_patches == {}
        assert session.get_background_results()["bg"].artifacts == artifacts


async def test_diverged_patch_is_flagged_or_refused() -> None:
    from penguiflow_sessions._errors import ContextDivergedError

    async with StreamingSession("s14") as session:
        session.update_context(llm_context={"topic": "a"})
        patch = ContextPatch(task_id="t", source_context_version=session.context_version)
        session.update_context(llm_context={"topic": "b"})
        before = session.get_background_results()
        with pytest.raises(ContextDivergedError, match="version"):
            await session.apply_context_patch(patch=patch, if_diverged="refuse")
        assert session.get_background_results() == before
        with pytest.raises(ContextDivergedError):
            session.update_context(llm_context={"x": 1}, expected_version=1)
        assert await session.apply_context_patch(patch=patch) is None
        warnings = [
            u for u in await session.list_updates() if u.update_type is UpdateType.NOTIFICATION
        ]
        assert warnings[-1].content["title"] == "Context changed"


async def test_close_cancels_running_tasks_and_ends_subscribers() -> None:
    session = StreamingSession("s15")
    stream = await session.subscribe()

    async def forever(rt: TaskRuntime) -> None:
        await asyncio.Event().wait()

    task_id = await session.spawn_task(forever)
    await _wait_status(session, task_id, TaskStatus.RUNNING)
    await session.close()
    received = [u async for u in stream]  # ends, after what was queued
    assert received[-1].content["reason"] == "cancelled"
    task = await session.get_task(task_id)
    assert task is not None and task.status is TaskStatus.CANCELLED
    assert task.error == "session_closed"


async def test_manager_get_or_create_and_drop() -> None:
    async with SessionManager() as manager:
        first = await manager.get_or_create("a")
        assert await manager.get_or_create("a") is first
        assert await manager.get("b") is None
        await manager.drop("a")
        assert first.closed and await manager.get("a") is None
