"""Planner events: to the `event_callback` as `PlannerEvent`s, and to middlewares (given, and
contributed through the `penguiflow_planner_sinks` hook) as `FlowEvent`s.

What an event carries goes to every sink and log, so no event carries a secret: a pause is
named by `pause_ref` (a digest of its token), never by the token.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from penguiflow.metrics import FlowEvent

__all__ = ["PlannerEvent", "hook_sinks", "publish"]

logger = logging.getLogger("penguiflow.planner")


@dataclass(frozen=True, slots=True)
class PlannerEvent:
    """Sent to `event_callback`: `kind` is step_start, step_finish, tool_call, repair, pause,
    resume, budget, reflection or finish."""

    kind: str
    iteration: int
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)


def hook_sinks(planner: Any, host: Any) -> list[Any]:
    """The middlewares that plugins contribute to `planner` through the
    `penguiflow_planner_sinks` hook of `host` (the active hook host when None)."""
    from penguiflow.plugins import active_hooks

    from . import hookspecs

    host = host or active_hooks()
    found: list[Any] = []
    if host is not None:
        caller = getattr(host.hook, "penguiflow_planner_sinks", None)
        if caller is None or not caller.has_spec():
            # A host without this plugin's hook plugin (disabled, or built by hand): the
            # planner still declares its own hooks before calling them.
            host.manager.add_hookspecs(hookspecs)
        for contributed in host.hook.penguiflow_planner_sinks(planner=planner):
            found += list(contributed or ())
    return found


async def publish(
    kind: str,
    *,
    run_id: str,
    iteration: int,
    data: dict[str, Any],
    sinks: Sequence[Any],
    callback: Callable[[PlannerEvent], Awaitable[None] | None] | None,
) -> None:
    """Send one event to every sink and the callback; a receiver that fails is logged and
    skipped (an observer must not break the run)."""
    if callback is None and not sinks:
        return
    event = PlannerEvent(kind=kind, iteration=iteration, data=data)
    flow_event = FlowEvent(
        event_type=f"planner_{kind}",
        ts=event.ts,
        node_name=data.get("tool"),
        node_id=None,
        trace_id=run_id,
        attempt=iteration,
        latency_ms=None,
        queue_depth_in=0,
        queue_depth_out=0,
        outgoing_edges=0,
        queue_maxsize=0,
        trace_pending=None,
        trace_inflight=0,
        trace_cancelled=False,
        extra=data,
    )
    receivers: list[tuple[Any, Any]] = [(sink, flow_event) for sink in sinks]
    if callback is not None:
        receivers.append((callback, event))
    for receiver, payload in receivers:
        try:
            result = receiver(payload)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("planner event receiver failed for %s", kind)
