"""Task telemetry: one event when a task is spawned, completes, fails or is cancelled (and when
a task group ends), for logs, metrics and traces.

The default sink logs (`default_task_telemetry_sink`): a background task fails where no one
is watching, so its failure must reach the logs unless someone chose otherwise. PenguiFlow's
default dropped these events, which hid background failures. `NoOpTaskTelemetrySink` exists
for those who do choose otherwise.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from penguiflow.errors import describe_exception

from .models import TaskStatus, TaskType

__all__ = [
    "LoggingTaskTelemetrySink",
    "NoOpTaskTelemetrySink",
    "TaskTelemetryEvent",
    "TaskTelemetrySink",
    "default_task_telemetry_sink",
    "emit_task_telemetry",
]

_LOGGER = logging.getLogger(__name__)

TelemetryEventType = Literal[
    "task_spawned",
    "task_completed",
    "task_failed",
    "task_cancelled",
    "task_group_completed",
    "task_group_failed",
]


class TaskTelemetryEvent(BaseModel):
    """Something that happened to a task. `extra` carries what the type needs: `error` for
    a failure, `reason` for a cancel, `group_id`/`group_name`/`task_count`/`completed_count`/
    `failed_count` for a group."""

    event_type: TelemetryEventType
    outcome: Literal["spawned", "completed", "failed", "cancelled"]
    session_id: str
    task_id: str
    parent_task_id: str | None = None
    trace_id: str | None = None
    task_type: TaskType
    status: TaskStatus
    mode: Literal["foreground", "subagent", "job"] | None = None
    spawn_reason: str | None = None
    duration_ms: float | None = None
    created_at_s: float = Field(default_factory=time.time)
    extra: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class TaskTelemetrySink(Protocol):
    """Receives task telemetry events."""

    async def emit(self, event: TaskTelemetryEvent) -> None: ...


class NoOpTaskTelemetrySink:
    """Discards every event: only for those who route task outcomes some other way."""

    async def emit(self, event: TaskTelemetryEvent) -> None:
        del event


_LEVELS: dict[str, int] = {
    "task_spawned": logging.INFO,
    "task_completed": logging.INFO,
    "task_failed": logging.ERROR,
    "task_cancelled": logging.WARNING,
    "task_group_completed": logging.INFO,
    "task_group_failed": logging.ERROR,
}


class LoggingTaskTelemetrySink:
    """Logs each event: failures at ERROR, cancels at WARNING, the rest at INFO.

    The message reads on its own ("task failed: t1 error=... session_id=..."); the event's
    fields also travel as the record's `penguiflow_task` attribute for structured handlers.
    `include_extra=False` leaves `extra` out of the message (it may hold user data)."""

    def __init__(self, logger: logging.Logger | None = None, *, include_extra: bool = True) -> None:
        self._logger = logger if logger is not None else _LOGGER
        self._include_extra = include_extra

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def emit(self, event: TaskTelemetryEvent) -> None:
        level = _LEVELS.get(event.event_type, logging.INFO)
        if not self._logger.isEnabledFor(level):
            return
        what = event.event_type.replace("_", " ")
        subject = event.extra.get("group_id", event.task_id) if "group" in what else event.task_id
        parts = [f"{what}: {subject}"]
        if event.event_type == "task_failed":
            parts.append(f"error={event.extra.get('error', 'unknown error')}")
        elif event.event_type == "task_cancelled":
            parts.append(f"reason={event.extra.get('reason', 'not given')}")
        elif event.event_type == "task_spawned":
            parts.append(f"reason={event.spawn_reason or 'not given'}")
        context = {
            "session_id": event.session_id,
            "task_id": event.task_id,
            "task_type": event.task_type.value,
            "status": event.status.value,
            "trace_id": event.trace_id,
            "parent_task_id": event.parent_task_id,
            "mode": event.mode,
            "duration_ms": None if event.duration_ms is None else round(event.duration_ms, 2),
        }
        parts += [f"{key}={value}" for key, value in context.items() if value is not None]
        if self._include_extra and event.extra:
            parts.append(f"extra={event.extra!r}")
        self._logger.log(
            level,
            "%s",
            " ".join(parts),
            extra={"penguiflow_task": event.model_dump(mode="json")},
        )


def default_task_telemetry_sink() -> TaskTelemetrySink:
    """The sink a session uses when given none: a `LoggingTaskTelemetrySink`."""
    return LoggingTaskTelemetrySink()


async def emit_task_telemetry(sink: TaskTelemetrySink | None, event: TaskTelemetryEvent) -> None:
    """Send `event` to `sink` (the default sink when None). A sink that raises is logged and
    otherwise ignored: telemetry must never change how a task ends."""
    target = sink if sink is not None else default_task_telemetry_sink()
    try:
        await target.emit(event)
    except Exception as exc:
        _LOGGER.error(
            "task telemetry sink %s failed on %s for task %s: %s",
            type(target).__name__,
            event.event_type,
            event.task_id,
            describe_exception(exc),
        )
