"""The records a session is made of: tasks, their updates, context patches, groups, limits.

Field names and defaults are PenguiFlow 3.11's (`penguiflow.sessions.models`, with the task
records it took from `penguiflow.state.models`), so stored sessions and client code keep
working. What goes on the wire or into a state store is `model_dump(mode="json")` of the
Pydantic models here; the dataclasses (`SessionLimits`, `SessionContext`, `TaskResult`,
`PendingContextPatch`) are in-process values only.

`TaskState` is one Pydantic model (PenguiFlow had a dataclass and a `TaskStateModel` copy of
it for storage); `TaskStateModel` names the same class, so code written against either works.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from penguiflow.errors import ConfigurationError

if TYPE_CHECKING:
    from penguiflow_planner import BackgroundTaskResult

__all__ = [
    "ContextDepth",
    "ContextPatch",
    "GroupCompletionResult",
    "GroupReportStrategy",
    "GroupStatus",
    "MergeStrategy",
    "NotificationAction",
    "NotificationPayload",
    "PendingContextPatch",
    "PropagateOnCancel",
    "SessionContext",
    "SessionLimits",
    "SpawnMode",
    "StateUpdate",
    "TaskContextSnapshot",
    "TaskDetails",
    "TaskGroup",
    "TaskResult",
    "TaskSpawnResult",
    "TaskState",
    "TaskStateModel",
    "TaskStatus",
    "TaskSummary",
    "TaskType",
    "UpdateType",
    "new_update_id",
]

#: How much of the session's context a spawned background task receives.
ContextDepth = Literal["full", "summary", "none"]
#: What cancelling a parent does to this task: `cascade` cancels it too, `isolate` keeps it.
PropagateOnCancel = Literal["cascade", "isolate"]
#: A background task is a forked planner (`subagent`) or a single tool call (`job`).
SpawnMode = Literal["subagent", "job"]
#: When a group reports: once all its tasks end, on each task's end, or never (polling).
GroupReportStrategy = Literal["all", "any", "none"]
#: `open` takes new tasks; `sealed` takes none and waits; `complete`/`failed` are final.
GroupStatus = Literal["open", "sealed", "complete", "failed"]


def _now() -> datetime:
    return datetime.now(UTC)


_id_lock = threading.Lock()
_last_id = 0


def new_update_id() -> str:
    """A fresh update id: decimal digits, 20 wide, strictly increasing within the process.

    Update ids are cursors (`subscribe(since_id=...)`), so they must order the same way as
    strings and as integers: a zero-padded count seeded from the clock in nanoseconds does
    both, and stays ahead of ids minted before a restart as long as the clock does. A state
    store that assigns its own ids replaces this one."""
    global _last_id
    with _id_lock:
        _last_id = max(_last_id + 1, time.time_ns())
        return f"{_last_id:020d}"


class UpdateType(str, Enum):
    """What a `StateUpdate` reports."""

    THINKING = "THINKING"
    PROGRESS = "PROGRESS"
    TOOL_CALL = "TOOL_CALL"
    RESULT = "RESULT"
    ERROR = "ERROR"
    CHECKPOINT = "CHECKPOINT"
    STATUS_CHANGE = "STATUS_CHANGE"
    NOTIFICATION = "NOTIFICATION"


class TaskStatus(str, Enum):
    """Where a task is in its life; COMPLETE, FAILED and CANCELLED are final."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the task has ended (nothing changes its status afterwards)."""
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.COMPLETE, TaskStatus.FAILED, TaskStatus.CANCELLED})


class TaskType(str, Enum):
    """A foreground task is the user's turn; background tasks run beside it."""

    FOREGROUND = "FOREGROUND"
    BACKGROUND = "BACKGROUND"


class MergeStrategy(str, Enum):
    """How a finished task's `ContextPatch` joins the session context: added to it, replacing
    what it covers, or held until a person approves it (`APPROVE` steering with its patch id)."""

    APPEND = "append"
    REPLACE = "replace"
    HUMAN_GATED = "human_gated"


class TaskContextSnapshot(BaseModel):
    """The context a task started from, and how it relates to the task that spawned it.

    `context_version`/`context_hash` record which session context it branched from, so a
    patch coming back can be checked for divergence."""

    session_id: str
    task_id: str
    trace_id: str | None = None
    spawned_from_task_id: str = "foreground"
    spawned_from_event_id: str | None = None
    spawned_at: datetime = Field(default_factory=_now)
    spawn_reason: str | None = None
    query: str | None = None
    propagate_on_cancel: PropagateOnCancel = "cascade"
    notify_on_complete: bool = True
    context_version: int | None = None
    context_hash: str | None = None
    llm_context: dict[str, Any] = Field(default_factory=dict)
    tool_context: dict[str, Any] = Field(default_factory=dict)
    memory: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)


class StateUpdate(BaseModel):
    """One thing that happened to a task, as subscribers and the update log see it.

    `update_id` is the update's cursor in its session: later updates have larger ids (see
    `new_update_id`), and `subscribe(since_id=...)` resumes after one."""

    session_id: str
    task_id: str
    trace_id: str | None = None
    update_id: str = Field(default_factory=new_update_id)
    update_type: UpdateType
    content: Any = None
    step_index: int | None = None
    total_steps: int | None = None
    created_at: datetime = Field(default_factory=_now)


class TaskState(BaseModel):
    """A task as the registry and the state store hold it."""

    task_id: str
    session_id: str
    status: TaskStatus
    task_type: TaskType
    priority: int = 0
    context_snapshot: TaskContextSnapshot
    trace_id: str | None = None
    result: Any = None
    error: str | None = None
    description: str | None = None
    progress: dict[str, Any] | None = None
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)

    def update_status(self, status: TaskStatus) -> None:
        """Set `status` and stamp `updated_at`."""
        self.status = status
        self.updated_at = _now()

    @classmethod
    def from_state(cls, state: TaskState) -> TaskState:
        """An independent copy of `state` (PenguiFlow converted its dataclass this way)."""
        return state.model_copy(deep=True)


#: PenguiFlow's name for the stored form of a task; here it is the same class.
TaskStateModel = TaskState


class ContextPatch(BaseModel):
    """What a finished task hands back to the session context.

    `artifacts` is a list of `{"node": ..., "field": ..., "artifact": ...}` dicts, one per
    artifact a tool produced (never the planner's per-tool mapping), so patches from several
    tasks concatenate. `context_diverged` says the session context changed since the task's
    snapshot (`source_context_version`/`source_context_hash`)."""

    task_id: str
    spawned_from_event_id: str | None = None
    source_context_version: int | None = None
    source_context_hash: str | None = None
    context_diverged: bool = False
    completed_at: datetime = Field(default_factory=_now)
    digest: list[str] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    sources: list[dict[str, Any]] = Field(default_factory=list)
    recommended_next_steps: list[str] = Field(default_factory=list)
    assumptions: list[str] = Field(default_factory=list)


class NotificationAction(BaseModel):
    """A choice offered with a notification (a button); `payload` comes back when chosen."""

    id: str
    label: str
    payload: dict[str, Any] = Field(default_factory=dict)


class NotificationPayload(BaseModel):
    """A message for the user about a task, with optional actions."""

    severity: Literal["info", "warning", "error"] = "info"
    title: str
    body: str
    actions: list[NotificationAction] = Field(default_factory=list)


def _new_group_id() -> str:
    return f"grp_{secrets.token_hex(6)}"


class TaskGroup(BaseModel):
    """Background tasks that report together.

    `name` is a label chosen by the planner; `group_id` is the stable identity (names are
    reused across turns, and only join an open group of the same `turn_id`)."""

    group_id: str = Field(default_factory=_new_group_id)
    name: str
    session_id: str
    status: GroupStatus = "open"
    merge_strategy: MergeStrategy = MergeStrategy.APPEND
    report_strategy: GroupReportStrategy = "all"
    task_ids: list[str] = Field(default_factory=list)
    completed_task_ids: list[str] = Field(default_factory=list)
    failed_task_ids: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=_now)
    sealed_at: datetime | None = None
    completed_at: datetime | None = None
    retain_turn: bool = False
    patches: list[str] = Field(default_factory=list)
    report_queued: bool = False
    turn_id: str | None = None

    @property
    def pending_task_ids(self) -> list[str]:
        """Tasks of the group that have not ended, in the order they joined."""
        ended = {*self.completed_task_ids, *self.failed_task_ids}
        return [task_id for task_id in self.task_ids if task_id not in ended]

    @property
    def is_complete(self) -> bool:
        """Whether the group is final, or sealed with every task ended (an open group can
        still take tasks, so it is never complete)."""
        if self.status in ("complete", "failed"):
            return True
        return self.status == "sealed" and not self.pending_task_ids


class TaskSummary(BaseModel):
    """A task as `tasks.list` shows it."""

    task_id: str
    session_id: str
    status: TaskStatus
    task_type: TaskType
    priority: int
    description: str | None = None
    progress: dict[str, Any] | None = None
    error: str | None = None
    has_result: bool = False


class TaskDetails(TaskSummary):
    """A task as `tasks.get` shows it."""

    result_digest: list[str] = Field(default_factory=list)
    spawned_from_task_id: str | None = None
    spawned_from_event_id: str | None = None


class GroupCompletionResult(BaseModel):
    """How a group ended, for a foreground turn that waited for it (`retain_turn`)."""

    group_id: str
    group_name: str
    status: GroupStatus
    task_count: int
    completed_task_ids: list[str]
    failed_task_ids: list[str]
    results: list[dict[str, Any]] = Field(default_factory=list)
    timed_out: bool = False


class TaskSpawnResult(BaseModel):
    """What spawning a background task returns."""

    task_id: str
    session_id: str
    status: TaskStatus
    group_id: str | None = None
    group: str | None = None
    retained: bool = False
    group_completion: GroupCompletionResult | None = None


@dataclass(slots=True)
class SessionLimits:
    """Bounds a session enforces. Task limits count tasks that have not ended.

    `max_concurrent_tasks=0` runs every task at once; `max_task_runtime_s=None` lets a task
    run for ever. `update_queue_size` bounds each subscriber's queue, `steering_queue_size`
    each task's steering inbox, `max_steering_events_per_task` the event ids remembered per
    task to refuse duplicates."""

    max_tasks_per_session: int = 8
    max_background_tasks: int = 4
    max_concurrent_tasks: int = 3
    max_task_runtime_s: float | None = 900
    update_queue_size: int = 500
    steering_queue_size: int = 200
    max_pending_patches: int = 32
    max_steering_payload_bytes: int = 16_384  # steering.MAX_STEERING_PAYLOAD_BYTES
    max_steering_events_per_task: int = 512

    def __post_init__(self) -> None:
        # Checked here so that a bad limit fails where it is written, not at the first task.
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "max_task_runtime_s":
                if value is not None and not (isinstance(value, int | float) and value > 0):
                    raise ConfigurationError(
                        f"SessionLimits.max_task_runtime_s must be a positive number of "
                        f"seconds or None (no limit), got {value!r}"
                    )
                continue
            smallest = 0 if item.name in ("max_concurrent_tasks", "update_queue_size") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
                raise ConfigurationError(
                    f"SessionLimits.{item.name} must be an integer >= {smallest}, got {value!r}"
                )


@dataclass(slots=True)
class SessionContext:
    """The session's shared context. `version` grows with every change; `context_hash` is
    the SHA-256 of the key-sorted JSON of `llm_context` (None when it is not JSON)."""

    llm_context: dict[str, Any] = field(default_factory=dict)
    tool_context: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    background_results: dict[str, BackgroundTaskResult] = field(default_factory=dict)
    version: int = 0
    context_hash: str | None = None


@dataclass(slots=True)
class TaskResult:
    """What a task pipeline returns (a pipeline may also return a bare value: it becomes
    `payload`). `artifacts` follows `ContextPatch.artifacts`' shape."""

    payload: Any = None
    context_patch: ContextPatch | None = None
    digest: list[str] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    notification: NotificationPayload | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PendingContextPatch:
    """A `HUMAN_GATED` patch waiting for `APPROVE`/`REJECT` steering naming its `patch_id`.
    `created_at` is a Unix time in seconds."""

    patch_id: str
    task_id: str
    patch: ContextPatch
    strategy: MergeStrategy
    created_at: float = field(default_factory=time.time)
