"""The session records: PenguiFlow 3.11's field names and defaults (checked against
`penguiflow==3.11.2`), ordered update ids, JSON round trips, limits that refuse bad values,
and the package's public names."""

from __future__ import annotations

import importlib
import importlib.util
from datetime import datetime
from typing import Any

import penguiflow_sessions
import pytest
from penguiflow_sessions import _homes, broker, models, policy, steering, telemetry
from penguiflow_sessions.models import (
    ContextPatch,
    MergeStrategy,
    NotificationPayload,
    PendingContextPatch,
    SessionContext,
    SessionLimits,
    StateUpdate,
    TaskContextSnapshot,
    TaskDetails,
    TaskGroup,
    TaskResult,
    TaskSpawnResult,
    TaskState,
    TaskStateModel,
    TaskStatus,
    TaskType,
    UpdateType,
    new_update_id,
)
from pydantic import ValidationError

from penguiflow.errors import ConfigurationError, PenguiFlowError, UnsupportedFeatureError


def _snapshot() -> TaskContextSnapshot:
    return TaskContextSnapshot(session_id="s", task_id="t")


def test_enums_have_penguiflows_values() -> None:
    assert [u.value for u in UpdateType] == [
        "THINKING", "PROGRESS", "TOOL_CALL", "RESULT", "ERROR", "CHECKPOINT", "STATUS_CHANGE",
        "NOTIFICATION",
    ]  # fmt: skip
    assert [s.value for s in TaskStatus] == [
        "PENDING", "RUNNING", "PAUSED", "COMPLETE", "FAILED", "CANCELLED"
    ]  # fmt: skip
    assert [t.value for t in TaskType] == ["FOREGROUND", "BACKGROUND"]
    assert [m.value for m in MergeStrategy] == ["append", "replace", "human_gated"]
    assert {s for s in TaskStatus if s.is_terminal} == {
        TaskStatus.COMPLETE, TaskStatus.FAILED, TaskStatus.CANCELLED
    }  # fmt: skip


def test_snapshot_defaults_are_penguiflows() -> None:
    snap = _snapshot().model_dump()
    assert snap["spawned_from_task_id"] == "foreground"
    assert snap["propagate_on_cancel"] == "cascade" and snap["notify_on_complete"] is True
    assert snap["llm_context"] == {} and snap["artifacts"] == []
    assert isinstance(snap["spawned_at"], datetime) and snap["spawned_at"].tzinfo is not None
    with pytest.raises(ValidationError, match="propagate_on_cancel"):
        TaskContextSnapshot(session_id="s", task_id="t", propagate_on_cancel="sometimes")  # type: ignore[arg-type]


def test_update_ids_increase_as_strings_and_as_integers() -> None:
    ids = [new_update_id() for _ in range(1000)]
    ids += [StateUpdate(session_id="s", task_id="t", update_type=UpdateType.PROGRESS).update_id]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert {len(i) for i in ids} == {20}


def test_a_state_update_goes_on_the_wire_as_json_and_comes_back() -> None:
    update = StateUpdate(
        session_id="s", task_id="t", update_type=UpdateType.PROGRESS, content={"pct": 50},
        step_index=1, total_steps=4,
    )  # fmt: skip
    wire = update.model_dump(mode="json")
    assert set(wire) == {
        "session_id", "task_id", "trace_id", "update_id", "update_type", "content",
        "step_index", "total_steps", "created_at",
    }  # fmt: skip
    assert wire["update_type"] == "PROGRESS" and isinstance(wire["created_at"], str)
    assert StateUpdate.model_validate(wire) == update
    with pytest.raises(ValidationError, match="update_type"):
        StateUpdate(session_id="s", task_id="t", update_type="SHOUTING")  # type: ignore[arg-type]


def test_task_state_is_one_model_under_both_names() -> None:
    assert TaskStateModel is TaskState
    state = TaskState(
        task_id="t", session_id="s", status=TaskStatus.PENDING, task_type=TaskType.BACKGROUND,
        priority=2, context_snapshot=_snapshot(),
    )  # fmt: skip
    before = state.updated_at
    state.update_status(TaskStatus.RUNNING)
    assert state.status is TaskStatus.RUNNING and state.updated_at >= before
    copy = TaskStateModel.from_state(state)
    assert (
        copy == state and copy is not state and copy.context_snapshot is not state.context_snapshot
    )
    assert TaskState.model_validate(state.model_dump(mode="json")) == state


def test_context_patch_keeps_artifacts_a_list_of_node_field_artifact_dicts() -> None:
    artifact = {"node": "chart", "field": "png", "artifact": {"ref": "a1"}}
    patch = ContextPatch(task_id="t", digest=["done"], artifacts=[artifact])
    wire = patch.model_dump(mode="json")
    assert wire["artifacts"] == [artifact] and wire["context_diverged"] is False
    assert set(wire) == {
        "task_id", "spawned_from_event_id", "source_context_version", "source_context_hash",
        "context_diverged", "completed_at", "digest", "facts", "artifacts", "sources",
        "recommended_next_steps", "assumptions",
    }  # fmt: skip
    with pytest.raises(ValidationError):
        ContextPatch(task_id="t", artifacts={"chart": [artifact]})  # type: ignore[arg-type]


def test_notifications_and_spawn_results() -> None:
    note = NotificationPayload(title="Done", body="Task t finished")
    assert note.severity == "info" and note.actions == []
    with pytest.raises(ValidationError, match="severity"):
        NotificationPayload(severity="loud", title="x", body="y")  # type: ignore[arg-type]
    spawned = TaskSpawnResult(task_id="t", session_id="s", status=TaskStatus.PENDING)
    assert spawned.retained is False and spawned.group_completion is None
    details = TaskDetails(
        task_id="t", session_id="s", status="COMPLETE", task_type="BACKGROUND", priority=0,  # type: ignore[arg-type]
    )  # fmt: skip
    assert details.has_result is False and details.result_digest == []


def test_task_group_lifecycle_properties() -> None:
    group = TaskGroup(name="research", session_id="s", task_ids=["a", "b"])
    assert group.group_id.startswith("grp_") and group.status == "open"
    assert group.merge_strategy is MergeStrategy.APPEND and group.report_strategy == "all"
    group.completed_task_ids.append("a")
    group.failed_task_ids.append("b")
    assert group.pending_task_ids == [] and not group.is_complete  # open: more may join
    group.status = "sealed"
    assert group.is_complete
    assert (
        TaskGroup(name="x", session_id="s").group_id != TaskGroup(name="x", session_id="s").group_id
    )


def test_session_limits_defaults_are_penguiflows_and_bad_values_are_refused() -> None:
    limits = SessionLimits()
    assert (
        limits.max_tasks_per_session, limits.max_background_tasks, limits.max_concurrent_tasks,
        limits.max_task_runtime_s, limits.update_queue_size, limits.steering_queue_size,
        limits.max_pending_patches, limits.max_steering_payload_bytes,
        limits.max_steering_events_per_task,
    ) == (8, 4, 3, 900, 500, 200, 32, 16_384, 512)  # fmt: skip
    assert limits.max_steering_payload_bytes == steering.MAX_STEERING_PAYLOAD_BYTES
    assert SessionLimits(max_concurrent_tasks=0, max_task_runtime_s=None).max_concurrent_tasks == 0
    for bad in (
        {"max_tasks_per_session": 0}, {"update_queue_size": -1}, {"max_task_runtime_s": 0},
        {"max_background_tasks": 1.5}, {"steering_queue_size": True},
    ):  # fmt: skip
        with pytest.raises(ConfigurationError, match=next(iter(bad))):
            SessionLimits(**bad)


def test_in_process_values_have_penguiflows_defaults() -> None:
    result = TaskResult()
    assert (result.payload, result.context_patch, result.digest, result.artifacts) == (
        None, None, [], []
    )  # fmt: skip
    context = SessionContext()
    assert (context.version, context.context_hash, context.background_results) == (0, None, {})
    pending = PendingContextPatch(
        patch_id="p1", task_id="t", patch=ContextPatch(task_id="t"),
        strategy=MergeStrategy.HUMAN_GATED,
    )  # fmt: skip
    assert pending.created_at > 0


@pytest.mark.parametrize("module", [models, broker, policy, steering, telemetry])
def test_every_public_name_exists(module: Any) -> None:
    assert module.__all__ and all(hasattr(module, name) for name in module.__all__)


def test_the_package_lists_every_penguiflow_sessions_name() -> None:
    # PenguiFlow 3.11.2's `penguiflow.sessions.__all__`, less the scheduler and proactive
    # helpers this version does not offer.
    penguiflow_names = {
        "ContextPatch", "ControlPolicy", "MergeStrategy", "NotificationAction",
        "NotificationPayload", "PlannerTaskPipeline", "PendingContextPatch", "SessionConnection",
        "SessionLimits", "SessionManager", "SessionStateStore", "StateStoreSessionAdapter",
        "StateUpdate", "StreamingSession", "TaskContextSnapshot", "TaskPipeline",
        "TaskRegistry", "TaskResult", "TaskRuntime", "TaskState", "TaskStateModel",
        "TaskStatus", "TaskType", "TaskDetails", "TaskService", "TaskSpawnResult",
        "TaskSummary", "InProcessTaskService", "ContextDepth", "SpawnDecision", "SpawnGuard",
        "SpawnRequest", "NoOpSpawnGuard", "TaskTelemetryEvent", "TaskTelemetrySink",
        "NoOpTaskTelemetrySink", "build_task_tool_specs", "UpdateBroker", "UpdateType",
        "InMemorySessionStateStore", "Transport",
    }  # fmt: skip
    assert penguiflow_names <= set(penguiflow_sessions.__all__)
    assert set(penguiflow_sessions.__all__) == set(_homes.HOMES)
    assert not set(_homes.UNSUPPORTED) & set(_homes.HOMES)


def test_each_name_resolves_to_its_home_module() -> None:
    missing_modules: set[str] = set()
    for name, home in _homes.HOMES.items():
        target = f"penguiflow_sessions{home}"
        if importlib.util.find_spec(target) is None:
            missing_modules.add(target)  # another part of the package, not written yet
            continue
        assert getattr(penguiflow_sessions, name) is getattr(importlib.import_module(target), name)
    # This helper's modules are all there.
    assert not missing_modules & {
        f"penguiflow_sessions.{m}" for m in ("models", "broker", "policy", "steering", "telemetry")
    }


def test_penguiflow_names_not_offered_say_what_to_use_instead() -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"JobScheduler.*spawn_task") as raised:
        penguiflow_sessions.JobScheduler  # noqa: B018
    assert isinstance(raised.value, PenguiFlowError)
    with pytest.raises(UnsupportedFeatureError, match="proactive reports"):
        from penguiflow_sessions import setup_proactive_reporting  # noqa: F401
    with pytest.raises(AttributeError, match="Nope"):
        penguiflow_sessions.Nope  # noqa: B018
    assert "JobScheduler" not in dir(penguiflow_sessions)
