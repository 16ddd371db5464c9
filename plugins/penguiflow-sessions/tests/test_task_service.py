"""InProcessTaskService over a real SessionManager: spawns (idempotent by key and by task id),
the spawn guard, context depth, task and group operations with their result dicts (`ok`),
retain_turn, and clear errors without state change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import penguiflow_sessions.task_service as task_service_module
import pytest
from _scripted import ScriptedClient, action, answer, catalog
from penguiflow_planner import BackgroundTasksConfig, ReactPlanner
from penguiflow_sessions.models import MergeStrategy, TaskStatus
from penguiflow_sessions.task_service import (
    InProcessTaskService,
    NoOpSpawnGuard,
    SpawnDecision,
    SpawnDeniedError,
    SpawnGuard,
    SpawnRequest,
    TaskService,
)

from penguiflow.errors import ConfigurationError, PenguiFlowError

ENDED = {TaskStatus.COMPLETE, TaskStatus.FAILED, TaskStatus.CANCELLED}


def test_public_names() -> None:
    for name in task_service_module.__all__:
        assert getattr(task_service_module, name) is not None
    assert {"InProcessTaskService", "SpawnGuard", "NoOpSpawnGuard", "SpawnRequest",
            "SpawnDecision", "TaskService"} <= set(task_service_module.__all__)  # fmt: skip
    assert issubclass(SpawnDeniedError, PenguiFlowError)
    assert isinstance(NoOpSpawnGuard(), SpawnGuard)


def _rules(text: str) -> str | None:
    if "notes on" in text:
        return answer("Found it: " + text.split("notes on ")[1].split('"')[0])
    return action("research", {"topic": "ice"})


def _subagent() -> ReactPlanner:
    return ReactPlanner(llm_client=ScriptedClient([_rules]), catalog=catalog(), max_iters=4)


class Denying:
    def __init__(self) -> None:
        self.requests: list[SpawnRequest] = []

    async def decide(self, request: SpawnRequest) -> SpawnDecision:
        self.requests.append(request)
        return SpawnDecision(allowed=False, reason="tenant quota reached")


class Sessions:
    """Never reached: the guard refuses first."""

    async def get_or_create(self, session_id: str) -> Any:
        raise AssertionError("a refused spawn must not touch the session")


async def test_the_guard_refuses_before_anything_changes() -> None:
    guard = Denying()
    service = InProcessTaskService(sessions=Sessions(), planner_factory=_subagent,
                                   tool_job_factory=lambda name, args: None,
                                   spawn_guard=guard)  # fmt: skip
    with pytest.raises(SpawnDeniedError, match="tenant quota reached"):
        await service.spawn(session_id="s1", query="q", priority=2)
    with pytest.raises(SpawnDeniedError, match="tenant quota reached"):
        await service.spawn_tool_job(session_id="s1", tool_name="t", tool_args={})
    first, second = guard.requests
    assert (first.mode, first.query, first.priority) == ("subagent", "q", 2)
    assert (second.mode, second.tool_name) == ("job", "t")


async def test_bad_arguments_are_refused_with_what_to_do() -> None:
    service = InProcessTaskService(sessions=Sessions(), planner_factory=None)
    with pytest.raises(SpawnDeniedError, match="planner_factory"):
        await service.spawn(session_id="s1", query="q")
    with pytest.raises(SpawnDeniedError, match="tool_job_factory"):
        await service.spawn_tool_job(session_id="s1", tool_name="t", tool_args={})
    with pytest.raises(ConfigurationError, match="context_depth"):
        await service.spawn(session_id="s1", query="q", context_depth="deep")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="non-empty question"):
        await service.spawn(session_id="s1", query=" ")


# -- with the session engine -----------------------------------------------------------------


@pytest.fixture
async def manager() -> AsyncIterator[Any]:
    pytest.importorskip("penguiflow_sessions.manager", reason="the session engine (S2)")
    from penguiflow_sessions.manager import SessionManager

    sessions = SessionManager()
    yield sessions
    await sessions.drop("s1")


def _service(manager: Any, **kwargs: Any) -> InProcessTaskService:
    return InProcessTaskService(sessions=manager, planner_factory=_subagent, **kwargs)


async def _ended(service: TaskService, task_id: str) -> Any:
    async with asyncio.timeout(20):
        while True:
            task = await service.get(session_id="s1", task_id=task_id, include_result=True)
            if task is not None and task.status in ENDED:
                return task
            await asyncio.sleep(0.01)  # polling the registry with a deadline


async def test_spawn_runs_a_subagent_and_reports_its_digest(manager: Any) -> None:
    service = _service(manager)
    spawned = await service.spawn(session_id="s1", query="look into ice")
    assert spawned.session_id == "s1"
    done = await _ended(service, spawned.task_id)
    assert done.status == TaskStatus.COMPLETE
    assert done.result_digest == ["Found it: ice"]
    assert done.spawned_from_task_id == "foreground"
    listed = await service.list(session_id="s1")
    assert [t.task_id for t in listed] == [spawned.task_id] and listed[0].has_result
    assert await service.list(session_id="s1", status=TaskStatus.FAILED) == []
    assert await service.get(session_id="s1", task_id="no-such-task") is None


async def test_an_idempotency_key_or_task_id_returns_the_first_task(manager: Any) -> None:
    service = _service(manager)
    first, again = await asyncio.gather(
        service.spawn(session_id="s1", query="look into ice", idempotency_key="k1"),
        service.spawn(session_id="s1", query="look into ice", idempotency_key="k1"),
    )
    assert first.task_id == again.task_id
    chosen = await service.spawn(session_id="s1", query="q", task_id="mine")
    assert chosen.task_id == "mine"
    assert (await service.spawn(session_id="s1", query="q", task_id="mine")).task_id == "mine"
    other = await service.spawn(session_id="s1", query="look into ice", idempotency_key="k2")
    assert other.task_id not in {first.task_id, "mine"}
    assert len(await service.list(session_id="s1")) == 3


async def test_context_depth_none_gives_the_task_no_conversation(manager: Any) -> None:
    session = await manager.get_or_create("s1")
    session.update_context(llm_context={"history": ["secret"], "summary": "short"},
                           tool_context={"client": object(), "region": "eu"})  # fmt: skip
    service = _service(manager)
    spawned = await service.spawn(session_id="s1", query="look into ice", context_depth="none",
                                  context_tool_context={"proactive_hops_remaining": 1})  # fmt: skip
    task = await session.get_task(spawned.task_id)
    assert task.context_snapshot.llm_context == {}
    # Objects that are not JSON stay behind; JSON values and the extra keys travel.
    assert task.context_snapshot.tool_context == {"region": "eu", "proactive_hops_remaining": 1}
    summary = await service.spawn(session_id="s1", query="look into ice", context_depth="summary")
    task = await session.get_task(summary.task_id)
    assert task.context_snapshot.llm_context == {"summary": "short"}


async def test_a_group_runs_seals_and_applies_together(manager: Any) -> None:
    service = _service(manager)
    a = await service.spawn(session_id="s1", query="look into ice", group="survey",
                            turn_id="turn-1")  # fmt: skip
    b = await service.spawn(session_id="s1", query="look into ice", group="survey",
                            turn_id="turn-1", group_sealed=True)  # fmt: skip
    assert a.group_id is not None and a.group_id == b.group_id and b.group == "survey"
    for spawned in (a, b):
        await _ended(service, spawned.task_id)
    group = await service.get_group(session_id="s1", group_id=a.group_id)
    assert group is not None and group.is_complete
    assert [g.group_id for g in await service.list_groups(session_id="s1")] == [a.group_id]
    applied = await service.apply_group(session_id="s1", group_id=a.group_id)
    assert applied["ok"] is True and "applied_patch_count" in applied and "success" not in applied
    assert await service.seal_group(session_id="s1", group_id=a.group_id) == {
        "ok": False, "error": "group_not_open", "status": group.status,
    }  # fmt: skip
    missing = {"ok": False, "error": "group_not_found"}
    assert await service.seal_group(session_id="s1", group_name="nope") == missing
    assert await service.cancel_group(session_id="s1", group_id="nope") == missing
    assert await service.apply_group(session_id="s1", group_id="nope") == missing


async def test_retain_turn_waits_for_the_group_and_returns_its_results(manager: Any) -> None:
    service = _service(manager, background_config=BackgroundTasksConfig(retain_turn_timeout_s=20))
    spawned = await service.spawn(
        session_id="s1", query="look into ice", group="inline", retain_turn=True,
        merge_strategy=MergeStrategy.APPEND, group_merge_strategy=MergeStrategy.APPEND,
    )  # fmt: skip
    assert spawned.retained is True
    completion = spawned.group_completion
    assert completion is not None and completion.timed_out is False
    assert completion.completed_task_ids == [spawned.task_id]
    assert completion.results  # delivered inline


async def test_a_retained_turn_gives_up_after_its_timeout(manager: Any) -> None:
    gate = asyncio.Event()

    async def slow_job(runtime: Any) -> Any:
        await gate.wait()
        return "late"

    service = _service(
        manager,
        tool_job_factory=lambda name, args: slow_job,
        background_config=BackgroundTasksConfig(retain_turn_timeout_s=0.05),
    )
    spawned = await service.spawn_tool_job(
        session_id="s1", tool_name="slow", tool_args={}, group="g", retain_turn=True,
        merge_strategy=MergeStrategy.APPEND, group_merge_strategy=MergeStrategy.APPEND,
    )  # fmt: skip
    assert spawned.retained is True
    assert spawned.group_completion is None or spawned.group_completion.timed_out
    gate.set()
    assert (await _ended(service, spawned.task_id)).status == TaskStatus.COMPLETE


async def test_cancel_and_prioritize_reach_the_task(manager: Any) -> None:
    gate = asyncio.Event()

    async def waiting(runtime: Any) -> Any:
        await gate.wait()
        return None

    service = _service(manager, tool_job_factory=lambda name, args: waiting)
    job = await service.spawn_tool_job(session_id="s1", tool_name="wait", tool_args={})
    assert await service.prioritize(session_id="s1", task_id=job.task_id, priority=5)
    assert (await service.get(session_id="s1", task_id=job.task_id)).priority == 5
    assert await service.cancel(session_id="s1", task_id=job.task_id, reason="not needed")
    assert (await _ended(service, job.task_id)).status == TaskStatus.CANCELLED
    with pytest.raises(PenguiFlowError, match="no-such-task"):
        await service.cancel(session_id="s1", task_id="no-such-task")
    with pytest.raises(ConfigurationError, match="session_id"):
        await service.list(session_id="")
