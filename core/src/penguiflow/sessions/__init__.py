"""`penguiflow.sessions`: PenguiFlow's sessions import path, served by the sessions plugin.

PenguiFlow 3.x shipped sessions inside `penguiflow`; here they live in the
`penguiflow-sessions` plugin (import package `penguiflow_sessions`). With it installed,
`from penguiflow.sessions import StreamingSession` gives the plugin's class itself, and
`penguiflow.sessions.models` (and `broker`, `session`, `policy`, ...) is the plugin's module of
that name. Without it, importing this package raises `MissingPluginError` (an `ImportError`)
saying how to install it. The forwarding works as `penguiflow.planner`'s does.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

from .._plugin_imports import import_plugin_module as _import_plugin_module
from .._plugin_imports import plugin_attribute as _plugin_attribute

if TYPE_CHECKING:
    from typing import Any

_DISTRIBUTION = "penguiflow-sessions"
_PLUGIN = _import_plugin_module(
    "penguiflow_sessions", distribution=_DISTRIBUTION, wanted="penguiflow.sessions"
)

#: The plugin modules reachable as `penguiflow.sessions.<name>` (one file here each).
_SUBMODULES = (
    "broker", "models", "persistence", "planner", "policy", "projections", "registry",
    "session", "task_service", "task_tools", "telemetry", "transport",
)  # fmt: skip

#: PenguiFlow 3.11's `penguiflow.sessions` names: one the plugin does not provide is an
#: ImportError that says so, rather than Python's bare "cannot import name".
_PENGUIFLOW_NAMES = frozenset(
    {
        "ContextDepth", "ContextPatch", "ControlPolicy", "InMemoryJobStore",
        "InMemorySessionStateStore", "InProcessTaskService", "JobDefinition", "JobScheduler",
        "JobSchedulerRunner", "JobStore", "MergeStrategy", "NoOpSpawnGuard",
        "NoOpTaskTelemetrySink", "NotificationAction", "NotificationPayload",
        "PendingContextPatch", "PlannerTaskPipeline", "ScheduleConfig", "SessionConnection",
        "SessionLimits", "SessionManager", "SessionStateStore", "SpawnDecision", "SpawnGuard",
        "SpawnRequest", "StateStoreSessionAdapter", "StateUpdate", "StreamingSession",
        "TaskContextSnapshot", "TaskDetails", "TaskPipeline", "TaskRegistry", "TaskResult",
        "TaskRuntime", "TaskService", "TaskSpawnResult", "TaskState", "TaskStateModel",
        "TaskStatus", "TaskSummary", "TaskTelemetryEvent", "TaskTelemetrySink", "TaskType",
        "Transport", "UpdateBroker", "UpdateType", "build_task_tool_specs",
        "create_default_proactive_generator", "setup_proactive_reporting",
    }
)  # fmt: skip

__all__: list[str] = list(_PLUGIN.__all__)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in __all__ or name in _PENGUIFLOW_NAMES:
        value = _plugin_attribute(
            _PLUGIN, name, distribution=_DISTRIBUTION, wanted=f"{__name__}.{name}"
        )
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The plugin's names and the submodules, not this module's helpers.
    dunders = {name for name in globals() if name.startswith("__") and name.endswith("__")}
    return sorted({*dunders, *__all__, *_SUBMODULES})
