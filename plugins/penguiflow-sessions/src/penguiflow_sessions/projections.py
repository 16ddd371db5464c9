"""Planner events as session updates: what a client watching a task sees of its planner.

A `PlannerEventProjector` belongs to one task; `project(event)` turns one `PlannerEvent` into
zero or more `StateUpdate`s addressed to that task. Events a client has no use for (prompt
details, budget bookkeeping) project to nothing. The update's content keeps PenguiFlow 3.11's
keys, which its clients read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .models import StateUpdate, UpdateType

__all__ = ["PlannerEventProjector"]

_Content = Callable[[Any, Mapping[str, Any]], "tuple[UpdateType, dict[str, Any]] | None"]


def _step(event: Any, label: str, details: dict[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    # PenguiFlow counts steps from 1 for people ("step 1 of ..."), the planner from 0.
    current = int(getattr(event, "trajectory_step", 0) or 0) + 1
    return UpdateType.PROGRESS, {"label": label, "current": current, "details": details}


def _step_start(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    return _step(event, "step_start", {"action_seq": extra.get("action_seq")})


def _step_complete(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    return _step(event, "step_complete", {"latency_ms": getattr(event, "latency_ms", None)})


def _chunk(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    channel = extra.get("channel") or "thinking"
    # Answer text streams as a result; reasoning and everything else as thinking.
    kind = UpdateType.RESULT if channel in ("answer", "revision") else UpdateType.THINKING
    return kind, {
        "text": extra.get("text", ""),
        "done": bool(extra.get("done", False)),
        "channel": channel,
        "phase": extra.get("phase") or None,
    }


def _artifact_chunk(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    keys = ("artifact_type", "stream_id", "seq", "chunk")
    content = {key: extra.get(key) for key in keys}
    content["done"] = bool(extra.get("done", False))
    return UpdateType.RESULT, content


def _artifact_stored(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    return UpdateType.RESULT, {
        "artifact_id": extra.get("artifact_id"),
        "mime_type": extra.get("mime_type"),
        "filename": extra.get("artifact_filename") or extra.get("filename"),
        "size_bytes": extra.get("size_bytes"),
        "source": extra.get("source"),
    }


def _tool_phase(phase: str, payload_key: str | None) -> _Content:
    def content(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
        body: dict[str, Any] = {
            "phase": phase,
            "tool_name": extra.get("tool_name"),
            "tool_call_id": extra.get("tool_call_id"),
        }
        if payload_key is not None:
            body[payload_key] = extra.get(payload_key)
        return UpdateType.TOOL_CALL, body

    return content


def _finish(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    return UpdateType.RESULT, {
        "reason": extra.get("reason"),
        "thought": getattr(event, "thought", None),
        "cost": extra.get("cost"),
        "answer_action_seq": extra.get("answer_action_seq"),
    }


def _steering(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    return UpdateType.STATUS_CHANGE, {
        "status": "STEERING_RECEIVED",
        "event_id": extra.get("event_id"),
        "event_type": extra.get("event_type"),
    }


def _kv(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    return UpdateType.CHECKPOINT, dict(extra)


def _error(event: Any, extra: Mapping[str, Any]) -> tuple[UpdateType, dict[str, Any]]:
    return UpdateType.ERROR, {"error": getattr(event, "error", None) or extra.get("error")}


_PROJECTIONS: dict[str, _Content] = {
    "step_start": _step_start,
    "step_complete": _step_complete,
    "stream_chunk": _chunk,
    "llm_stream_chunk": _chunk,
    "artifact_chunk": _artifact_chunk,
    "artifact_stored": _artifact_stored,
    "tool_call_start": _tool_phase("start", "args_json"),
    "tool_call_end": _tool_phase("end", "args_json"),
    "tool_call_result": _tool_phase("result", "result_json"),
    "finish": _finish,
    "steering_received": _steering,
    "kv_init": _kv,
    "kv_set": _kv,
    "kv_patch": _kv,
    "kv_delete": _kv,
    "error": _error,
}


class PlannerEventProjector:
    """Turns one task's planner events into `StateUpdate`s for its session."""

    def __init__(self, *, session_id: str, task_id: str, trace_id: str | None = None) -> None:
        self._session_id = session_id
        self._task_id = task_id
        self._trace_id = trace_id

    def project(self, event: Any) -> list[StateUpdate]:
        """The updates `event` (a `PlannerEvent`) becomes: none for an event clients do not
        follow, else one, with the planner's step as its `step_index`."""
        build = _PROJECTIONS.get(str(getattr(event, "event_type", "")))
        if build is None:
            return []
        extra = getattr(event, "extra", None)
        projected = build(event, dict(extra) if isinstance(extra, Mapping) else {})
        if projected is None:
            return []
        update_type, content = projected
        return [
            StateUpdate(
                session_id=self._session_id,
                task_id=self._task_id,
                trace_id=self._trace_id,
                update_type=update_type,
                content=content,
                step_index=getattr(event, "trajectory_step", None),
            )
        ]
