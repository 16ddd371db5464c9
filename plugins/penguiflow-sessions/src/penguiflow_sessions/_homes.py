"""Where each public name of `penguiflow_sessions` lives, and the PenguiFlow names this
version does not offer.

Kept apart from `__init__` so the kernel's `penguiflow.sessions` and the tests can read the
map without importing any session module.
"""

from __future__ import annotations

__all__ = ["HOMES", "SUBMODULES", "UNSUPPORTED"]


def _at(module: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, module)


#: name -> the module (relative to the package) that defines it.
HOMES: dict[str, str] = {
    **_at(
        ".models",
        "ContextDepth", "ContextPatch", "GroupCompletionResult", "MergeStrategy",
        "NotificationAction", "NotificationPayload", "PendingContextPatch", "SessionContext",
        "SessionLimits", "StateUpdate", "TaskContextSnapshot", "TaskDetails", "TaskGroup",
        "TaskResult", "TaskSpawnResult", "TaskState", "TaskStateModel", "TaskStatus",
        "TaskSummary", "TaskType", "UpdateType",
    ),
    **_at(".broker", "UpdateBroker", "UpdateSubscription"),
    **_at(".policy", "ControlPolicy"),
    **_at(
        ".steering",
        "SteeringCancelled", "SteeringEvent", "SteeringEventType", "SteeringInbox",
        "SteeringValidationError",
    ),
    **_at(
        ".telemetry",
        "LoggingTaskTelemetrySink", "NoOpTaskTelemetrySink", "TaskTelemetryEvent",
        "TaskTelemetrySink",
    ),
    # The engine (helper S2's modules).
    **_at(".session", "StreamingSession", "TaskPipeline", "TaskRuntime"),
    **_at(".manager", "SessionManager"),
    **_at(".registry", "TaskRegistry"),
    **_at(
        ".persistence",
        "InMemorySessionStateStore", "SessionStateStore", "StateStoreSessionAdapter",
    ),
    **_at(".transport", "SessionConnection", "Transport"),
    # The planner side (helper S4's modules).
    **_at(".planner", "PlannerTaskPipeline"),
    **_at(".projections", "PlannerEventProjector"),
    **_at(
        ".task_service",
        "InProcessTaskService", "NoOpSpawnGuard", "SpawnDecision", "SpawnGuard",
        "SpawnRequest", "TaskService",
    ),
    **_at(".task_tools", "build_task_tool_specs"),
}  # fmt: skip

#: PenguiFlow 3.11 `penguiflow.sessions` names not offered here, with what to do instead.
UNSUPPORTED: dict[str, str] = {
    **dict.fromkeys(
        [
            "InMemoryJobStore", "JobDefinition", "JobScheduler", "JobSchedulerRunner",
            "JobStore", "ScheduleConfig",
        ],
        "the job scheduler is not part of penguiflow-sessions; run jobs from your own "
        "scheduler (cron, APScheduler...) with `StreamingSession.spawn_task`",
    ),
    **dict.fromkeys(
        ["setup_proactive_reporting", "create_default_proactive_generator"],
        "proactive reports are not part of penguiflow-sessions; subscribe to the session's "
        "RESULT and NOTIFICATION updates and start a foreground turn from them",
    ),
}  # fmt: skip

#: PenguiFlow's `penguiflow.sessions.<name>` modules that exist here under the same name.
SUBMODULES = (
    "broker", "models", "persistence", "planner", "policy", "projections", "registry",
    "session", "task_service", "task_tools", "telemetry", "transport",
)  # fmt: skip
