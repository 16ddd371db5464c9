"""Steering a running plan: the planner's side of a steering inbox.

`run(..., steering=inbox)` and `resume(..., steering=inbox)` take any object with PenguiFlow's
`SteeringInbox` surface (`cancelled`, `cancel_reason`, `cancel_event`, `has_event()`,
`drain()`, `wait_if_paused()`), whose events have `event_id`, `event_type` (an enum or its
string value), `payload`, `source` and `to_injection()`. Sessions (penguiflow-sessions) provide
one; any object of that shape works. Before each step the planner waits while the inbox is
paused, then drains it: CANCEL ends the run with `SteeringCancelled`; REDIRECT rewrites the
query; INJECT_CONTEXT, REDIRECT and USER_MESSAGE reach the model once, on its next call. A tool
call races the inbox's cancel event: a cancel cancels the tool.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio

from penguiflow.errors import PenguiFlowError

from ._events import EmitFn
from ._trajectory import Trajectory

__all__ = ["SteeringCancelled", "SteeringSource", "apply_steering", "has_pending", "race_cancel"]

T = TypeVar("T")

#: events kept in `metadata["steering_history"]`
_HISTORY = 50


class SteeringCancelled(PenguiFlowError, RuntimeError):
    """The run was cancelled through its steering inbox; `reason` says why."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "cancelled")
        self.reason = reason


@runtime_checkable
class SteeringSource(Protocol):
    """What the planner needs of a steering inbox."""

    @property
    def cancelled(self) -> bool: ...

    def has_event(self) -> bool: ...

    def drain(self) -> list[Any]: ...

    async def wait_if_paused(self) -> None: ...


def _kind(event: Any) -> str:
    kind = getattr(event, "event_type", "")
    return str(getattr(kind, "value", kind)).upper()


def _injection(event: Any) -> str:
    to_injection = getattr(event, "to_injection", None)
    if callable(to_injection):
        return str(to_injection())
    return json.dumps(
        {"steering": {"event_type": _kind(event), "payload": dict(getattr(event, "payload", {}))}},
        default=str,
        ensure_ascii=False,
    )


async def apply_steering(steering: Any, trajectory: Trajectory, emit: EmitFn) -> None:
    """Wait while the inbox is paused, then apply what it holds (see the module's docs)."""
    await steering.wait_if_paused()
    if steering.cancelled:
        raise SteeringCancelled(getattr(steering, "cancel_reason", None))
    for event in steering.drain():
        kind = _kind(event)
        payload = dict(getattr(event, "payload", None) or {})
        await emit(
            "steering_received",
            {"event_id": getattr(event, "event_id", None), "event_type": kind,
             "source": getattr(event, "source", None)},
        )  # fmt: skip
        if kind == "CANCEL":
            raise SteeringCancelled(str(payload.get("reason") or "cancelled"))
        if kind == "REDIRECT":
            goal = payload.get("instruction") or payload.get("goal") or payload.get("query")
            if isinstance(goal, str) and goal.strip():
                trajectory.query = goal.strip()
        if kind in ("INJECT_CONTEXT", "REDIRECT"):
            trajectory.steering_inputs.append(_injection(event))
        elif kind == "USER_MESSAGE":
            trajectory.steering_inputs.append(
                json.dumps(
                    {
                        "steering": {
                            "event_type": "USER_MESSAGE",
                            "user_text": str(payload.get("text", "")),
                            "active_background_tasks": payload.get("active_tasks", []),
                        }
                    },
                    ensure_ascii=False,
                    default=str,
                )
            )
        history = trajectory.metadata.setdefault("steering_history", [])
        history.append(
            {"event_id": getattr(event, "event_id", None), "event_type": kind,
             "source": getattr(event, "source", None), "payload": payload,
             "trajectory_step": len(trajectory.steps)}
        )  # fmt: skip
        del history[:-_HISTORY]


def has_pending(steering: Any) -> bool:
    """Whether steering arrived that the model has not seen (a finish then waits for it)."""
    return steering is not None and bool(steering.has_event())


async def race_cancel(steering: Any, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work`, cancelled when the inbox's cancel event is set (then `SteeringCancelled`).
    Whatever `work` raises comes out as it is (not in an exception group)."""
    event = getattr(steering, "cancel_event", None) if steering is not None else None
    if event is None:
        return await work()
    result: list[T] = []

    async def watch(scope: anyio.CancelScope) -> None:
        await event.wait()
        scope.cancel()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch, group.cancel_scope)
            try:
                result.append(await work())
            finally:
                group.cancel_scope.cancel()
    except BaseExceptionGroup as errors:
        if len(errors.exceptions) == 1:
            raise errors.exceptions[0] from errors.exceptions[0].__cause__
        raise
    if result:
        return result[0]
    raise SteeringCancelled(getattr(steering, "cancel_reason", None) or "cancelled")
