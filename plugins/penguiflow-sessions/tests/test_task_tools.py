"""The `tasks.*` tools: their catalog entries, stable result schemas (`ok`, never `success`),
what they need from the tool context, and that only the foreground may use them."""

from __future__ import annotations

from typing import Any

import penguiflow_sessions.task_tools as task_tools
import pytest
from penguiflow_planner.context import PlannerToolContext
from penguiflow_sessions.models import (
    MergeStrategy,
    TaskDetails,
    TaskGroup,
    TaskSpawnResult,
    TaskStatus,
    TaskType,
)
from penguiflow_sessions.task_tools import TasksSpawnArgs, TaskToolError, build_task_tool_specs
from pydantic import ValidationError

from penguiflow.state.in_memory import InMemoryStateStore

NAMES = [
    "tasks.spawn", "tasks.list", "tasks.get", "tasks.cancel", "tasks.prioritize",
    "tasks.apply_patch", "tasks.acknowledge_background", "tasks.seal_group",
    "tasks.cancel_group", "tasks.apply_group", "tasks.list_groups", "tasks.get_group",
]  # fmt: skip


def test_public_names() -> None:
    assert task_tools.__all__ == [
        "SUBAGENT_FLAG_KEY",
        "TASK_SERVICE_KEY",
        "TaskToolError",
        "TasksSpawnArgs",
        "build_task_tool_specs",
    ]
    assert (task_tools.TASK_SERVICE_KEY, task_tools.SUBAGENT_FLAG_KEY) == (
        "task_service",
        "is_subagent",
    )


def test_the_twelve_tools_and_their_result_schemas() -> None:
    specs = {spec.name: spec for spec in build_task_tool_specs()}
    assert list(specs) == NAMES
    for name in ("tasks.cancel", "tasks.prioritize", "tasks.apply_patch", "tasks.seal_group",
                 "tasks.cancel_group", "tasks.apply_group"):  # fmt: skip
        fields = specs[name].out_model.model_fields
        assert "ok" in fields and "success" not in fields, name
    assert "applied_patch_count" in specs["tasks.apply_group"].out_model.model_fields
    assert specs["tasks.spawn"].out_model is TaskSpawnResult
    assert specs["tasks.get"].out_model is TaskDetails
    assert specs["tasks.get_group"].out_model is TaskGroup
    assert specs["tasks.list"].side_effects == "read"
    assert specs["tasks.spawn"].side_effects == "stateful"
    assert "background" in specs["tasks.spawn"].tags
    # A new list each call: a planner may change its own copy.
    assert build_task_tool_specs()[0] is not build_task_tool_specs()[0]


def test_spawn_arguments_are_checked() -> None:
    with pytest.raises(ValidationError, match="needs a query"):
        TasksSpawnArgs(mode="subagent")
    with pytest.raises(ValidationError, match="tool_name and tool_args"):
        TasksSpawnArgs(mode="job", tool_name="x")
    with pytest.raises(ValidationError, match="APPEND or REPLACE"):
        TasksSpawnArgs(query="q", retain_turn=True)
    ok = TasksSpawnArgs(query="q", retain_turn=True, group_merge_strategy=MergeStrategy.APPEND)
    assert ok.retain_turn


class RecordingService:
    """A TaskService that records each call and answers with fixed values."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _record(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))

    async def spawn(self, **kwargs: Any) -> TaskSpawnResult:
        self._record("spawn", kwargs)
        return TaskSpawnResult(task_id="t9", session_id=kwargs["session_id"],
                               status=TaskStatus.PENDING)  # fmt: skip

    async def spawn_tool_job(self, **kwargs: Any) -> TaskSpawnResult:
        self._record("spawn_tool_job", kwargs)
        return TaskSpawnResult(task_id="j1", session_id=kwargs["session_id"],
                               status=TaskStatus.RUNNING)  # fmt: skip

    async def list(self, **kwargs: Any) -> list[Any]:
        self._record("list", kwargs)
        return []

    async def get(self, **kwargs: Any) -> TaskDetails | None:
        self._record("get", kwargs)
        if kwargs["task_id"] != "t9":
            return None
        return TaskDetails(task_id="t9", session_id="s1", status=TaskStatus.COMPLETE,
                           task_type=TaskType.BACKGROUND, priority=0)  # fmt: skip

    async def cancel(self, **kwargs: Any) -> bool:
        self._record("cancel", kwargs)
        return True

    async def prioritize(self, **kwargs: Any) -> bool:
        self._record("prioritize", kwargs)
        return False

    async def apply_patch(self, **kwargs: Any) -> bool:
        self._record("apply_patch", kwargs)
        return True

    async def acknowledge_background(self, **kwargs: Any) -> int:
        self._record("acknowledge_background", kwargs)
        return 1

    async def seal_group(self, **kwargs: Any) -> dict[str, Any]:
        self._record("seal_group", kwargs)
        return {"ok": True, "group_id": "g1", "sealed_task_count": 2}

    async def cancel_group(self, **kwargs: Any) -> dict[str, Any]:
        self._record("cancel_group", kwargs)
        return {"ok": False, "error": "group_not_found"}

    async def apply_group(self, **kwargs: Any) -> dict[str, Any]:
        self._record("apply_group", kwargs)
        return {"ok": True, "applied_patch_count": 2, "rejected_patch_count": 0}

    async def list_groups(self, **kwargs: Any) -> list[TaskGroup]:
        self._record("list_groups", kwargs)
        return [TaskGroup(name="g", session_id="s1")]

    async def get_group(self, **kwargs: Any) -> TaskGroup | None:
        self._record("get_group", kwargs)
        return None


def _ctx(tool_context: dict[str, Any]) -> PlannerToolContext:
    async def emit(*args: Any, **kwargs: Any) -> None:
        return None

    return PlannerToolContext(
        llm_context={}, tool_context=tool_context, tool_name="tasks", tool_call_id="c",
        emit=emit, state_store=InMemoryStateStore(), artifact_store=None, memory_key=None,
        trace_id=None, pause_enabled=False,
    )  # fmt: skip


async def _call(name: str, args: dict[str, Any], tool_context: dict[str, Any]) -> Any:
    spec = next(spec for spec in build_task_tool_specs() if spec.name == name)
    assert spec.node is not None
    return await spec.node.func(spec.args_model.model_validate(args), _ctx(tool_context))


async def test_each_tool_calls_its_service_method_with_the_session() -> None:
    service = RecordingService()
    tools = {"task_service": service, "session_id": "s1", "task_id": "fg", "turn_id": "turn-1"}
    spawned = await _call("tasks.spawn", {"query": "dig", "group": "g", "idempotency_key": "k"},
                          tools)  # fmt: skip
    assert spawned.task_id == "t9"
    name, kwargs = service.calls[-1]
    assert name == "spawn"
    assert kwargs["session_id"] == "s1" and kwargs["parent_task_id"] == "fg"
    assert kwargs["turn_id"] == "turn-1" and kwargs["idempotency_key"] == "k"
    job = await _call("tasks.spawn", {"mode": "job", "tool_name": "x", "tool_args": {"a": 1}},
                      tools)  # fmt: skip
    assert job.task_id == "j1" and service.calls[-1][1]["tool_args"] == {"a": 1}
    assert (await _call("tasks.cancel", {"task_id": "t9"}, tools)).model_dump() == {"ok": True}
    assert (await _call("tasks.prioritize", {"task_id": "t9", "priority": 3}, tools)).ok is False
    applied = await _call("tasks.apply_patch", {"patch_id": "p1", "action": "reject"}, tools)
    assert applied.model_dump() == {"ok": True, "action": "reject"}
    acked = await _call("tasks.acknowledge_background", {"task_ids": ["t9"]}, tools)
    assert acked.model_dump() == {"acknowledged": ["t9"], "cleaned_up": 1}
    sealed = await _call("tasks.seal_group", {"group": "g"}, tools)
    assert sealed.model_dump() == {"ok": True, "group_id": "g1", "sealed_task_count": 2}
    assert service.calls[-1][1]["turn_id"] == "turn-1"
    cancelled = await _call("tasks.cancel_group", {"group_id": "nope"}, tools)
    assert cancelled.model_dump() == {"ok": False, "cancelled_task_count": 0}
    grouped = await _call("tasks.apply_group", {"group_id": "g1"}, tools)
    assert grouped.model_dump() == {"ok": True, "action": "apply", "applied_patch_count": 2}
    assert len((await _call("tasks.list_groups", {}, tools)).groups) == 1
    assert (await _call("tasks.list", {"status": "RUNNING"}, tools)).tasks == []
    assert service.calls[-1][1]["status"] == TaskStatus.RUNNING
    assert (await _call("tasks.get", {"task_id": "t9"}, tools)).status == TaskStatus.COMPLETE


async def test_unknown_task_and_group_are_clear_errors() -> None:
    tools = {"task_service": RecordingService(), "session_id": "s1"}
    with pytest.raises(TaskToolError, match="task_not_found: no task 'zz'"):
        await _call("tasks.get", {"task_id": "zz"}, tools)
    with pytest.raises(TaskToolError, match="group_not_found"):
        await _call("tasks.get_group", {"group": "g"}, tools)
    with pytest.raises(TaskToolError, match="group_required"):
        await _call("tasks.seal_group", {}, tools)


@pytest.mark.parametrize(
    ("tool_context", "message"),
    [
        ({"session_id": "s1"}, "task_service_unavailable"),
        ({"task_service": RecordingService()}, "session_id_missing"),
        ({"task_service": RecordingService(), "session_id": "s1", "is_subagent": True},
         "subagent_task_management_disabled"),
    ],
)  # fmt: skip
async def test_tools_need_a_service_a_session_and_the_foreground(
    tool_context: dict[str, Any], message: str
) -> None:
    for name, args in (("tasks.list", {}), ("tasks.spawn", {"query": "q"})):
        with pytest.raises(TaskToolError, match=message):
            await _call(name, args, tool_context)
    assert issubclass(TaskToolError, RuntimeError)


async def test_spawning_stops_when_proactive_hops_are_used_up() -> None:
    service = RecordingService()
    tools = {"task_service": service, "session_id": "s1", "proactive_hops_remaining": 0}
    with pytest.raises(TaskToolError, match="proactive_hops_exhausted"):
        await _call("tasks.spawn", {"query": "q"}, tools)
    assert service.calls == []
    tools["proactive_hops_remaining"] = 2
    await _call("tasks.spawn", {"query": "q"}, tools)
    assert service.calls[-1][1]["context_tool_context"] == {"proactive_hops_remaining": 2}
