"""Task groups: open -> sealed -> complete/failed, sealed groups refuse tasks, cancel, apply."""

from __future__ import annotations

import asyncio

import pytest
from penguiflow_sessions.models import (
    ContextPatch,
    MergeStrategy,
    SessionLimits,
    TaskResult,
    TaskStatus,
    TaskType,
    UpdateType,
)
from penguiflow_sessions.session import StreamingSession, TaskRuntime

from penguiflow.errors import UnknownNameError, UsageError

LIMITS = SessionLimits(max_concurrent_tasks=0, max_background_tasks=8)


def _work(gate: asyncio.Event, *, fail: bool = False):  # type: ignore[no-untyped-def]
    async def pipeline(rt: TaskRuntime) -> TaskResult:
        await gate.wait()
        if fail:
            raise RuntimeError("nope")
        patch = ContextPatch(task_id=rt.state.task_id, digest=[rt.state.task_id])
        return TaskResult(payload={"digest": [rt.state.task_id]}, context_patch=patch)

    return pipeline


async def test_group_completes_after_seal_and_all_tasks_end() -> None:
    async with StreamingSession("g1", limits=LIMITS) as session:
        group = await session.resolve_or_create_group(group_name="research", turn_id="t1")
        assert await session.resolve_or_create_group(group_name="research", turn_id="t1") is group
        gate = asyncio.Event()
        ids = [
            await session.spawn_task(
                _work(gate), task_type=TaskType.BACKGROUND, group_id=group.group_id
            )
            for _ in range(2)
        ]
        assert group.task_ids == ids and group.status == "open"
        assert await session.seal_group(group.group_id) is True
        assert await session.seal_group(group.group_id) is False
        gate.set()
        found, timed_out = await session.wait_for_group_completion(group.group_id, timeout_s=5)
        assert found is group and not timed_out and group.status == "complete"
        results = await session.get_group_results(group.group_id)
        assert sorted(r["task_id"] for r in results) == sorted(ids)
        notes = [
            u
            for u in await session.list_updates(task_id=group.group_id)
            if u.update_type is UpdateType.NOTIFICATION
        ]
        assert notes and notes[-1].content["completed_count"] == 2


async def test_sealed_group_refuses_new_tasks_without_state_change() -> None:
    async with StreamingSession("g2", limits=LIMITS) as session:
        group = await session.resolve_or_create_group(group_name="g")
        gate = asyncio.Event()
        first = await session.spawn_task(
            _work(gate), task_type=TaskType.BACKGROUND, group_id=group.group_id
        )
        await session.seal_group(group.group_id)
        with pytest.raises(UsageError, match="sealed"):
            await session.spawn_task(
                _work(gate), task_type=TaskType.BACKGROUND, group_id=group.group_id
            )
        assert [t.task_id for t in await session.list_tasks()] == [first]
        assert group.task_ids == [first]
        with pytest.raises(UnknownNameError, match="missing"):
            await session.spawn_task(_work(asyncio.Event()), group_id="missing")
        with pytest.raises(UsageError):
            await session.resolve_or_create_group(group_id=group.group_id)
        gate.set()


async def test_failed_task_fails_group_and_cancel_group_cancels_tasks() -> None:
    async with StreamingSession("g3", limits=LIMITS) as session:
        gate = asyncio.Event()
        failing = await session.resolve_or_create_group(group_name="f")
        await session.spawn_task(
            _work(gate, fail=True), task_type=TaskType.BACKGROUND, group_id=failing.group_id
        )
        await session.seal_group(failing.group_id)
        gate.set()
        await session.wait_for_group_completion(failing.group_id, timeout_s=5)
        assert failing.status == "failed" and len(failing.failed_task_ids) == 1

        doomed = await session.resolve_or_create_group(group_name="c")
        task_id = await session.spawn_task(
            _work(asyncio.Event()), task_type=TaskType.BACKGROUND, group_id=doomed.group_id
        )
        assert await session.cancel_group(doomed.group_id, reason="enough") is True
        assert doomed.status == "failed"
        task = await session.get_task(task_id)
        assert task is not None and task.status is TaskStatus.CANCELLED
        assert await session.cancel_group(doomed.group_id) is False


async def test_human_gated_group_patches_applied_together() -> None:
    async with StreamingSession("g4", limits=LIMITS) as session:
        group = await session.resolve_or_create_group(
            group_name="h", merge_strategy=MergeStrategy.HUMAN_GATED
        )
        gate = asyncio.Event()
        for _ in range(2):
            await session.spawn_task(
                _work(gate),
                task_type=TaskType.BACKGROUND,
                group_id=group.group_id,
                merge_strategy=MergeStrategy.HUMAN_GATED,
            )
        await session.seal_group(group.group_id)
        gate.set()
        await session.wait_for_group_completion(group.group_id, timeout_s=5)
        assert len(group.patches) == 2 and len(session.pending_patches) == 2
        checkpoint = [
            u
            for u in await session.list_updates(task_id=group.group_id)
            if u.update_type is UpdateType.CHECKPOINT
        ]
        assert checkpoint[-1].content["kind"] == "group_approval"
        assert await session.apply_group_patches(group.group_id) is True
        assert session.pending_patches == {} and len(session.get_background_results()) == 2


async def test_auto_seal_open_groups_of_turn() -> None:
    async with StreamingSession("g5") as session:
        session.set_turn_id("turn-1")
        a = await session.resolve_or_create_group(group_name="a", turn_id="turn-1")
        b = await session.resolve_or_create_group(group_name="b", turn_id="turn-2")
        assert await session.auto_seal_open_groups() == 1
        assert a.status == "complete" and b.status == "open"  # empty sealed group is done
        assert [g.group_id for g in await session.list_groups(status="open")] == [b.group_id]


async def test_a_human_gated_group_survives_a_restart_and_is_applied_after_it() -> None:
    # Regression: groups lived in memory only, so after a restart apply_group_patches could
    # not find the group whose patches waited for approval.
    from penguiflow_sessions.persistence import InMemorySessionStateStore

    store = InMemorySessionStateStore()
    async with StreamingSession("g6", limits=LIMITS, state_store=store) as session:
        group = await session.resolve_or_create_group(
            group_name="h", merge_strategy=MergeStrategy.HUMAN_GATED
        )
        gate = asyncio.Event()
        gate.set()
        for _ in range(2):
            await session.spawn_task(
                _work(gate),
                task_type=TaskType.BACKGROUND,
                group_id=group.group_id,
                merge_strategy=MergeStrategy.HUMAN_GATED,
            )
        await session.seal_group(group.group_id)
        await session.wait_for_group_completion(group.group_id, timeout_s=5)
        saved = group.model_dump(mode="json")
    async with StreamingSession("g6", limits=LIMITS, state_store=store) as again:
        await again.hydrate()
        restored = await again.get_group(group.group_id)
        assert restored is not None and restored.model_dump(mode="json") == saved
        assert restored.status == "complete" and len(restored.patches) == 2
        _, timed_out = await again.wait_for_group_completion(group.group_id, timeout_s=0.01)
        assert not timed_out  # an ended group is waited for at once
        assert await again.apply_group_patches(group.group_id) is True
        assert again.pending_patches == {} and len(again.get_background_results()) == 2
