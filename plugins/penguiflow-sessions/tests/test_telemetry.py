"""Task telemetry: the default sink logs (a failed background task is never silent), each
event type at its level, and a failing sink never changes how a task ends."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from penguiflow_sessions.models import TaskStatus, TaskType
from penguiflow_sessions.telemetry import (
    LoggingTaskTelemetrySink,
    NoOpTaskTelemetrySink,
    TaskTelemetryEvent,
    TaskTelemetrySink,
    default_task_telemetry_sink,
    emit_task_telemetry,
)

LOGGER = "penguiflow_sessions.telemetry"


def telemetry(kind: str, outcome: str, status: TaskStatus, **more: Any) -> TaskTelemetryEvent:
    return TaskTelemetryEvent(
        event_type=kind, outcome=outcome, session_id="s1", task_id="t1",  # type: ignore[arg-type]
        task_type=TaskType.BACKGROUND, status=status, **more,
    )  # fmt: skip


async def test_the_default_sink_logs_a_background_failure_at_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = default_task_telemetry_sink()
    assert isinstance(sink, LoggingTaskTelemetrySink) and isinstance(sink, TaskTelemetrySink)
    caplog.set_level(logging.INFO, logger=LOGGER)
    failed = telemetry(
        "task_failed", "failed", TaskStatus.FAILED, extra={"error": "boom"}, duration_ms=12.345,
        trace_id="tr", parent_task_id="fg",
    )  # fmt: skip
    await emit_task_telemetry(None, failed)  # None: the default sink
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.name == LOGGER
    message = record.getMessage()
    for part in ("task failed: t1", "error=boom", "session_id=s1", "duration_ms=12.35",
                 "parent_task_id=fg", "trace_id=tr", "task_type=BACKGROUND"):  # fmt: skip
        assert part in message
    assert record.penguiflow_task["event_type"] == "task_failed"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "outcome", "status", "extra", "level", "text"),
    [
        ("task_spawned", "spawned", TaskStatus.PENDING, {}, logging.INFO, "reason=research"),
        ("task_completed", "completed", TaskStatus.COMPLETE, {}, logging.INFO,
         "task completed: t1"),
        ("task_cancelled", "cancelled", TaskStatus.CANCELLED, {"reason": "user"}, logging.WARNING,
         "reason=user"),
        ("task_group_completed", "completed", TaskStatus.COMPLETE, {"group_id": "grp_1"},
         logging.INFO, "task group completed: grp_1"),
        ("task_group_failed", "failed", TaskStatus.FAILED, {"group_id": "grp_2"}, logging.ERROR,
         "task group failed: grp_2"),
    ],
)  # fmt: skip
async def test_each_event_type_logs_at_its_level(
    caplog: pytest.LogCaptureFixture, kind: str, outcome: str, status: TaskStatus,
    extra: dict[str, Any], level: int, text: str,
) -> None:  # fmt: skip
    logger = logging.getLogger("test.telemetry")
    caplog.set_level(logging.DEBUG, logger="test.telemetry")
    sink = LoggingTaskTelemetrySink(logger)
    await sink.emit(telemetry(kind, outcome, status, extra=extra, spawn_reason="research"))
    (record,) = caplog.records
    assert record.levelno == level and text in record.getMessage()


async def test_extra_can_be_kept_out_of_the_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    event = telemetry("task_completed", "completed", TaskStatus.COMPLETE, extra={"secret": "x"})
    await LoggingTaskTelemetrySink(include_extra=False).emit(event)
    await LoggingTaskTelemetrySink().emit(event)
    assert ["secret" in r.getMessage() for r in caplog.records] == [False, True]


async def test_a_failing_sink_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        async def emit(self, event: TaskTelemetryEvent) -> None:
            raise RuntimeError("metrics backend down")

    caplog.set_level(logging.ERROR, logger=LOGGER)
    await emit_task_telemetry(Broken(), telemetry("task_failed", "failed", TaskStatus.FAILED))
    (record,) = caplog.records
    assert "Broken failed on task_failed for task t1: metrics backend down" in record.getMessage()


async def test_the_no_op_sink_is_an_explicit_choice(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await emit_task_telemetry(
        NoOpTaskTelemetrySink(), telemetry("task_failed", "failed", TaskStatus.FAILED)
    )
    assert caplog.records == []


def test_event_defaults_and_validation() -> None:
    event = telemetry("task_spawned", "spawned", TaskStatus.PENDING)
    assert event.created_at_s > 0 and event.extra == {} and event.mode is None
    with pytest.raises(ValueError, match="event_type"):
        telemetry("task_exploded", "failed", TaskStatus.FAILED)
