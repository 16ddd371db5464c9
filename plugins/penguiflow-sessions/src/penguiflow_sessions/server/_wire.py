"""The JSON wire format: request bodies, WebSocket frames and SSE event encoding.

Updates travel as `StateUpdate.model_dump(mode="json")`, with `session_id` replaced by the id
the client knows (the server keeps sessions under an id scoped to their owner)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

if TYPE_CHECKING:
    from ..models import StateUpdate, TaskState

__all__ = [
    "SESSION_ID_PATTERN",
    "ClientFrame",
    "CreateSessionRequest",
    "MessageFrame",
    "MessageRequest",
    "PingFrame",
    "SteerFrame",
    "SteerRequest",
    "encode_sse",
    "task_view",
    "update_view",
]

#: Session ids a client may choose: URL-safe, so they never need escaping in a path.
SESSION_ID_PATTERN = r"^[A-Za-z0-9_.~-]{1,128}$"


class _Strict(BaseModel):
    # Unknown fields are refused: a typo ("paylod") would otherwise be dropped silently.
    model_config = ConfigDict(extra="forbid")


class CreateSessionRequest(_Strict):
    """`POST /sessions`: open (or reopen) a session; without an id the server picks one."""

    session_id: Annotated[str, Field(pattern=SESSION_ID_PATTERN)] | None = None


class MessageRequest(_Strict):
    """`POST /sessions/{id}/messages`: start a foreground turn with the user's message."""

    query: Annotated[str, Field(min_length=1)]
    #: replaces the session's LLM-visible context before the turn starts
    llm_context: dict[str, Any] | None = None


class SteerRequest(_Strict):
    """`POST /sessions/{id}/steer`: one steering event for one task. The server fills in
    the session and marks the source as `user`."""

    task_id: Annotated[str, Field(min_length=1)]
    event_type: str
    payload: dict[str, Any] = Field(default_factory=dict)
    #: a client-chosen id makes retries safe: the session accepts each id once
    event_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    trace_id: str | None = None


class SteerFrame(SteerRequest):
    """WebSocket `{"type": "steer", ...}`: a `SteerRequest` with a frame type."""

    type: Literal["steer"]
    request_id: str | None = None


class MessageFrame(MessageRequest):
    """WebSocket `{"type": "message", "query": ...}`: start a foreground turn."""

    type: Literal["message"]
    request_id: str | None = None


class PingFrame(_Strict):
    """WebSocket `{"type": "ping"}`: answered with `{"type": "pong"}`."""

    type: Literal["ping"]
    request_id: str | None = None


ClientFrame = Annotated[SteerFrame | MessageFrame | PingFrame, Field(discriminator="type")]


def update_view(update: StateUpdate, public_session_id: str) -> dict[str, Any]:
    """An update as clients receive it (SSE `data`, WebSocket `update` frame)."""
    data = update.model_dump(mode="json", fallback=_unserialisable)
    data["session_id"] = public_session_id
    return data


def task_view(task: TaskState, public_session_id: str) -> dict[str, Any]:
    """What a client may see of a task: never its tool context, which holds clients and
    secrets the server was given for tools."""
    snapshot = task.context_snapshot
    return {
        "task_id": task.task_id,
        "session_id": public_session_id,
        "status": task.status.value,
        "task_type": task.task_type.value,
        "priority": task.priority,
        "description": task.description,
        "query": snapshot.query,
        "parent_task_id": snapshot.spawned_from_task_id,
        "trace_id": task.trace_id,
        "progress": to_jsonable_python(task.progress, fallback=_unserialisable),
        "result": to_jsonable_python(task.result, fallback=_unserialisable),
        "error": task.error,
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
    }


def _unserialisable(value: Any) -> str:
    # A tool's result may hold objects JSON cannot carry; the client gets their type name
    # rather than a broken stream.
    return f"<{type(value).__name__}>"


def encode_sse(*, data: Any, event: str | None = None, event_id: str | None = None) -> bytes:
    """One Server-Sent Event. `data` is JSON on one line (JSON escapes newlines inside
    strings, so the event cannot be split or forged by its content)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")
