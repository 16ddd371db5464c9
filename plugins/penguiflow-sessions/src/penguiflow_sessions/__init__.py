"""Sessions for PenguiFlow: a long-lived conversation running a foreground planner turn beside
background tasks, streaming their updates and taking steering while they run.

The public API is PenguiFlow 3.11's `penguiflow.sessions` and `penguiflow.steering` (the
kernel forwards both import paths here; `penguiflow.steering` is `penguiflow_sessions.steering`).
Names load on first use, so importing the package is cheap. PenguiFlow's job scheduler and
proactive-report helpers are not offered: asking for one raises `UnsupportedFeatureError`
saying what to use instead.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from penguiflow.errors import UnsupportedFeatureError

from ._homes import HOMES, UNSUPPORTED

if TYPE_CHECKING:
    from .broker import UpdateBroker, UpdateSubscription
    from .models import (
        ContextDepth,
        ContextPatch,
        GroupCompletionResult,
        MergeStrategy,
        NotificationAction,
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
        TaskSummary,
        TaskType,
        UpdateType,
    )
    from .policy import ControlPolicy
    from .steering import (
        SteeringCancelled,
        SteeringEvent,
        SteeringEventType,
        SteeringInbox,
        SteeringValidationError,
    )
    from .telemetry import (
        LoggingTaskTelemetrySink,
        NoOpTaskTelemetrySink,
        TaskTelemetryEvent,
        TaskTelemetrySink,
    )

__all__ = [
    "ContextDepth",
    "ContextPatch",
    "ControlPolicy",
    "GroupCompletionResult",
    "InMemorySessionStateStore",
    "InProcessTaskService",
    "LoggingTaskTelemetrySink",
    "MergeStrategy",
    "NoOpSpawnGuard",
    "NoOpTaskTelemetrySink",
    "NotificationAction",
    "NotificationPayload",
    "PendingContextPatch",
    "PlannerEventProjector",
    "PlannerTaskPipeline",
    "SessionConnection",
    "SessionContext",
    "SessionLimits",
    "SessionManager",
    "SessionStateStore",
    "SpawnDecision",
    "SpawnGuard",
    "SpawnRequest",
    "StateStoreSessionAdapter",
    "StateUpdate",
    "SteeringCancelled",
    "SteeringEvent",
    "SteeringEventType",
    "SteeringInbox",
    "SteeringValidationError",
    "StreamingSession",
    "TaskContextSnapshot",
    "TaskDetails",
    "TaskGroup",
    "TaskPipeline",
    "TaskRegistry",
    "TaskResult",
    "TaskRuntime",
    "TaskService",
    "TaskSpawnResult",
    "TaskState",
    "TaskStateModel",
    "TaskStatus",
    "TaskSummary",
    "TaskTelemetryEvent",
    "TaskTelemetrySink",
    "TaskType",
    "Transport",
    "UpdateBroker",
    "UpdateSubscription",
    "UpdateType",
    "build_task_tool_specs",
]


def __getattr__(name: str) -> Any:
    home = HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home, __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in UNSUPPORTED:
        raise UnsupportedFeatureError(f"penguiflow.sessions.{name}: {UNSUPPORTED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
