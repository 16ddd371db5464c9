"""Steering: events that change a running task, how they are cleaned and checked, and the
inbox a task reads them from.

A steering event comes from outside the process (a browser, another agent), so before a
session acts on one it is sanitised (`sanitize_steering_event`: bounded depth, keys, list
items, string length and total size) and validated for its type (`validate_steering_event`).

`SteeringInbox` is what the task holds. CANCEL, PAUSE and RESUME take effect the moment they
are pushed (a cancel sets `cancel_event`, which a running tool call races; a pause closes the
gate `wait_if_paused` waits on), even when the queue is full. Everything else waits in the
queue until the task drains it: each event is handed out once. The planner reads an inbox
through `cancelled`, `cancel_reason`, `cancel_event`, `has_event()`, `drain()` and
`wait_if_paused()`; `SteeringCancelled` is the planner's own exception, re-exported.

The inbox belongs to the task, not to one planner run: a task that pauses for approval keeps
its inbox, so APPROVE/REJECT sent while it waits reach it.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal
from uuid import uuid4

from penguiflow_planner import SteeringCancelled
from pydantic import BaseModel, Field

from penguiflow.errors import PenguiFlowError

from ._guard_inbox import (
    GuardRuleEvaluator,
    InMemoryGuardInbox,
    SteeringGuardEvent,
    SteeringGuardInbox,
    SteeringGuardResponse,
)

__all__ = [
    "MAX_STEERING_DEPTH",
    "MAX_STEERING_KEYS",
    "MAX_STEERING_LIST_ITEMS",
    "MAX_STEERING_PAYLOAD_BYTES",
    "MAX_STEERING_STRING",
    "GuardRuleEvaluator",
    "InMemoryGuardInbox",
    "SteeringCancelled",
    "SteeringEvent",
    "SteeringEventType",
    "SteeringGuardEvent",
    "SteeringGuardInbox",
    "SteeringGuardResponse",
    "SteeringInbox",
    "SteeringValidationError",
    "_sanitize_value",
    "sanitize_payload",
    "sanitize_steering_event",
    "validate_steering_event",
]

#: Largest payload, in bytes of its UTF-8 JSON, kept as it is.
MAX_STEERING_PAYLOAD_BYTES = 16_384
#: Nesting levels kept; deeper values become "<truncated>".
MAX_STEERING_DEPTH = 6
#: Keys kept per object; the rest are dropped and `__truncated_keys__` is set.
MAX_STEERING_KEYS = 64
#: Items kept per list; a final "<truncated>" marks that some were dropped.
MAX_STEERING_LIST_ITEMS = 50
#: Characters kept per string.
MAX_STEERING_STRING = 4_096
#: Characters kept per object key.
_MAX_KEY = 64
_CUT = "<truncated>"


class SteeringEventType(str, Enum):
    """What a steering event asks of a task."""

    INJECT_CONTEXT = "INJECT_CONTEXT"
    REDIRECT = "REDIRECT"
    CANCEL = "CANCEL"
    PRIORITIZE = "PRIORITIZE"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    USER_MESSAGE = "USER_MESSAGE"


def _now() -> datetime:
    return datetime.now(UTC)


def _new_event_id() -> str:
    return uuid4().hex


class SteeringEvent(BaseModel):
    """One steering instruction for one task of a session.

    `event_id` identifies it for deduplication (a session refuses an id it has seen for that
    task). `source` is who sent it: "user" by default; other sources need confirmation for
    destructive types (see `ControlPolicy`)."""

    session_id: str
    task_id: str
    event_id: str = Field(default_factory=_new_event_id)
    event_type: SteeringEventType
    payload: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = None
    source: str = "user"
    created_at: datetime = Field(default_factory=_now)

    def to_injection(self) -> str:
        """The event as the JSON text a planner shows its model (`{"steering": {...}}`)."""
        body = {
            "event_id": self.event_id,
            "task_id": self.task_id,
            "event_type": self.event_type.value,
            "payload": dict(self.payload),
            "created_at": self.created_at.isoformat(),
        }
        return json.dumps({"steering": body}, ensure_ascii=False, default=str)


class SteeringValidationError(PenguiFlowError, ValueError):
    """A steering event was refused; `errors` lists each problem, naming the field or limit.

    A `ValueError` too, as in PenguiFlow, for callers that catch that."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__(
            "invalid steering event: " + "; ".join(self.errors or ["no details given"])
        )


def _sanitize_value(value: Any, *, depth: int) -> Any:
    """`value` cut down to the structural limits and to JSON types (others become text).
    `depth` is how many more nesting levels may be kept."""
    if depth <= 0:
        return _CUT
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON: keep them readable as text.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value[:MAX_STEERING_STRING]
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index == MAX_STEERING_KEYS:
                kept["__truncated_keys__"] = True
                break
            kept[str(key)[:_MAX_KEY]] = _sanitize_value(item, depth=depth - 1)
        return kept
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        out = [_sanitize_value(item, depth=depth - 1) for item in items[:MAX_STEERING_LIST_ITEMS]]
        if len(items) > MAX_STEERING_LIST_ITEMS:
            out.append(_CUT)
        return out
    return _safe_text(value)[:MAX_STEERING_STRING]


def _safe_text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a payload object whose __str__ fails must not fail the session
        return f"<unprintable {type(value).__name__}>"


def _json_size(value: Any) -> tuple[str, int]:
    text = json.dumps(value, ensure_ascii=False)
    return text, len(text.encode("utf-8"))


def _summary(text: str) -> dict[str, Any]:
    return {"truncated": True, "summary": text[:MAX_STEERING_STRING]}


def sanitize_payload(
    payload: Any, *, max_payload_bytes: int = MAX_STEERING_PAYLOAD_BYTES
) -> dict[str, Any]:
    """A JSON-safe copy of `payload` within the `MAX_STEERING_*` limits.

    Deep, wide or long parts are cut (with markers saying so); a result still larger than
    `max_payload_bytes` becomes `{"truncated": True, "summary": <its JSON, cut>}`. A payload
    that is not an object is wrapped as `{"value": ...}`."""
    cleaned = _sanitize_value(payload, depth=MAX_STEERING_DEPTH)
    if not isinstance(cleaned, dict):
        cleaned = {"value": cleaned}
    text, size = _json_size(cleaned)
    return cleaned if size <= max_payload_bytes else _summary(text)


def sanitize_steering_event(
    event: SteeringEvent,
    *,
    max_payload_bytes: int = MAX_STEERING_PAYLOAD_BYTES,
    oversize: Literal["truncate", "refuse"] = "truncate",
) -> SteeringEvent:
    """A copy of `event` with its payload sanitised (see `sanitize_payload`).

    With `oversize="refuse"`, a payload whose JSON is larger than `max_payload_bytes` raises
    `SteeringValidationError` naming the limit instead of being summarised."""
    if oversize not in ("truncate", "refuse"):
        raise SteeringValidationError(
            [f"oversize must be 'truncate' or 'refuse', got {oversize!r}"]
        )
    payload = dict(event.payload or {})
    if oversize == "refuse":
        try:
            _, size = _json_size(payload)
        except (TypeError, ValueError):
            size = 0  # not JSON as it is: sanitising makes it text, then the size is checked
        if size > max_payload_bytes:
            raise SteeringValidationError(
                [
                    f"payload is {size} bytes of JSON, over the limit max_steering_payload_bytes"
                    f"={max_payload_bytes}; send a smaller payload (or raise "
                    "SessionLimits.max_steering_payload_bytes)"
                ]
            )
    cleaned = sanitize_payload(payload, max_payload_bytes=max_payload_bytes)
    if oversize == "refuse" and cleaned.get("truncated") is True and "summary" in cleaned:
        raise SteeringValidationError(
            [
                f"payload is over the limit max_steering_payload_bytes={max_payload_bytes} "
                "once made JSON-safe; send a smaller payload"
            ]
        )
    return event.model_copy(update={"payload": cleaned})


def _text(payload: dict[str, Any], key: str) -> bool:
    value = payload.get(key)
    return isinstance(value, str) and bool(value.strip())


def _optional(payload: dict[str, Any], key: str, kind: type, label: str, name: str) -> list[str]:
    value = payload.get(key)
    # bool is an int in Python, but `true` is not a valid priority or reason.
    if value is None or (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        return []
    return [f"{name} payload field {key!r} must be {label}, got {type(value).__name__}"]


def _choice(payload: dict[str, Any], key: str, allowed: tuple[str, ...], name: str) -> list[str]:
    value = payload.get(key)
    if value is None or value in allowed:
        return []
    return [f"{name} payload field {key!r} must be one of {', '.join(allowed)}; got {value!r}"]


def _errors_for(kind: SteeringEventType, payload: dict[str, Any]) -> list[str]:
    name = kind.value
    errors: list[str] = []
    if kind is SteeringEventType.INJECT_CONTEXT:
        if not _text(payload, "text"):
            errors.append(f"{name} needs a non-empty string payload field 'text'")
        errors += _choice(payload, "scope", ("foreground", "task_only"), name)
        errors += _choice(payload, "severity", ("note", "correction"), name)
    elif kind is SteeringEventType.REDIRECT:
        if not any(_text(payload, key) for key in ("instruction", "goal", "query")):
            errors.append(
                f"{name} needs a non-empty string payload field 'instruction' (or 'goal' or "
                "'query')"
            )
        errors += _optional(payload, "constraints", dict, "an object", name)
    elif kind is SteeringEventType.CANCEL:
        errors += _optional(payload, "reason", str, "a string", name)
        errors += _optional(payload, "hard", bool, "a boolean", name)
    elif kind is SteeringEventType.PRIORITIZE:
        priority = payload.get("priority")
        if isinstance(priority, bool) or not isinstance(priority, int):
            errors.append(f"{name} needs an integer payload field 'priority'")
    elif kind in (SteeringEventType.APPROVE, SteeringEventType.REJECT):
        if not any(_text(payload, key) for key in ("resume_token", "patch_id", "event_id")):
            errors.append(
                f"{name} needs a non-empty string payload field 'resume_token', 'patch_id' or "
                "'event_id' naming what it decides"
            )
        errors += _optional(payload, "decision", str, "a string", name)
    elif kind in (SteeringEventType.PAUSE, SteeringEventType.RESUME):
        errors += _optional(payload, "reason", str, "a string", name)
    elif kind is SteeringEventType.USER_MESSAGE:
        if not _text(payload, "text"):
            errors.append(f"{name} needs a non-empty string payload field 'text'")
        errors += _optional(payload, "active_tasks", list, "a list", name)
    return errors


def validate_steering_event(event: SteeringEvent) -> None:
    """Check `event.payload` against what its type needs; `SteeringValidationError` lists
    every problem, each naming the field."""
    payload: Any = event.payload
    if not isinstance(payload, dict):
        raise SteeringValidationError(
            [f"payload must be a JSON object, got {type(payload).__name__}"]
        )
    errors = _errors_for(SteeringEventType(event.event_type), payload)
    if errors:
        raise SteeringValidationError(errors)


class SteeringInbox:
    """A task's queue of steering events, with its cancel and pause state.

    `push` returns False when the event was not queued: the queue holds `maxsize` events,
    and at most `max_pending_user_messages` USER_MESSAGEs wait at once (a user typing faster
    than the task reads is told to wait, not silently merged). CANCEL, PAUSE and RESUME take
    effect even when they cannot be queued. A cancel also opens the pause gate: a paused
    task must wake to see that it was cancelled."""

    def __init__(self, *, maxsize: int = 100, max_pending_user_messages: int = 2) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise SteeringValidationError(
                [f"SteeringInbox maxsize must be an integer >= 0 (0: unbounded), got {maxsize!r}"]
            )
        if (
            isinstance(max_pending_user_messages, bool)
            or not isinstance(max_pending_user_messages, int)
            or max_pending_user_messages < 0
        ):
            raise SteeringValidationError(
                [
                    "SteeringInbox max_pending_user_messages must be an integer >= 0, got "
                    f"{max_pending_user_messages!r}"
                ]
            )
        self._maxsize = maxsize
        self._max_user_messages = max_pending_user_messages
        self._queue: deque[SteeringEvent] = deque()
        self._user_messages = 0
        self._arrived = asyncio.Event()
        self._cancel_event = asyncio.Event()
        self._cancel_reason: str | None = None
        self._paused = False
        # Open while the task may run: not paused, or cancelled (see the class docstring).
        self._gate = asyncio.Event()
        self._gate.set()

    @property
    def cancelled(self) -> bool:
        """Whether a CANCEL was pushed."""
        return self._cancel_event.is_set()

    @property
    def cancel_reason(self) -> str | None:
        """The reason of the first CANCEL ("cancelled" when it gave none), else None."""
        return self._cancel_reason

    @property
    def cancel_event(self) -> asyncio.Event:
        """Set by the first CANCEL; a running tool call races it."""
        return self._cancel_event

    @property
    def paused(self) -> bool:
        """Whether a PAUSE is in force (no RESUME since)."""
        return self._paused

    @property
    def pending_user_messages(self) -> int:
        """USER_MESSAGE events queued and not yet drained."""
        return self._user_messages

    def __len__(self) -> int:
        return len(self._queue)

    def push_nowait(self, event: SteeringEvent) -> bool:
        """Queue `event` (see the class docstring); True when it was queued."""
        kind = SteeringEventType(event.event_type)
        if kind is SteeringEventType.CANCEL:
            if not self.cancelled:
                reason = event.payload.get("reason")
                self._cancel_reason = reason if isinstance(reason, str) and reason else "cancelled"
                self._cancel_event.set()
            self._gate.set()
        elif kind is SteeringEventType.PAUSE:
            self._paused = True
            if not self.cancelled:
                self._gate.clear()
        elif kind is SteeringEventType.RESUME:
            self._paused = False
            self._gate.set()
        if self._maxsize and len(self._queue) >= self._maxsize:
            return False
        if kind is SteeringEventType.USER_MESSAGE:
            if self._user_messages >= self._max_user_messages:
                return False
            self._user_messages += 1
        self._queue.append(event)
        self._arrived.set()
        return True

    async def push(self, event: SteeringEvent) -> bool:
        """`push_nowait`, as a coroutine (PenguiFlow's spelling)."""
        return self.push_nowait(event)

    def has_event(self) -> bool:
        """Whether events are queued (without taking them)."""
        return bool(self._queue)

    def _take(self) -> SteeringEvent:
        event = self._queue.popleft()
        if SteeringEventType(event.event_type) is SteeringEventType.USER_MESSAGE:
            self._user_messages -= 1
        if not self._queue:
            self._arrived.clear()
        return event

    def drain(self) -> list[SteeringEvent]:
        """Take every queued event, oldest first; each event is returned by one call only."""
        events: list[SteeringEvent] = []
        while self._queue:
            events.append(self._take())
        return events

    async def next(self) -> SteeringEvent:
        """Wait for the next event and take it."""
        while not self._queue:
            await self._arrived.wait()
        return self._take()

    async def wait_if_paused(self) -> None:
        """Return at once unless paused; when paused, wait for RESUME (or CANCEL)."""
        await self._gate.wait()
