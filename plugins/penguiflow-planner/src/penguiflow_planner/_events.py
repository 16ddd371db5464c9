"""Planner events: to the `event_callback` as `PlannerEvent`s (PenguiFlow 3.11's), to
middlewares (given, and contributed through the `penguiflow_planner_sinks` hook) as
`FlowEvent`s, and to the `penguiflow.planner` logger.

What an event carries goes to every sink and log, so no event carries a secret: a pause is
named by `pause_ref` (a digest of its token), never by the token.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from penguiflow.metrics import FlowEvent

__all__ = ["EmitFn", "PlannerEvent", "PlannerEventCallback", "RunEmitFn", "hook_sinks", "publish"]

logger = logging.getLogger("penguiflow.planner")


#: Attributes of `logging.LogRecord`: `to_payload()` leaves out `extra` keys with these names,
#: so a payload can be passed as a log call's `extra` without clobbering the record.
_LOG_RECORD_KEYS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


@dataclass(frozen=True, slots=True)
class PlannerEvent:
    """Something that happened in a run, sent to the planner's `event_callback` (PenguiFlow
    3.11's event). `event_type` names it (`step_start`, `step_complete`, `tool_call_start`,
    `tool_call_end`, `tool_call_result`, `pause`, `resume`, `finish`, ...; docs/planner.md
    lists them all); `trajectory_step` is the index of the step it belongs to; `extra` carries
    the rest."""

    event_type: str
    ts: float
    trajectory_step: int
    thought: str | None = None
    node_name: str | None = None
    latency_ms: float | None = None
    token_estimate: int | None = None
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The event as one flat dict (`event`, `ts`, `step`, the fields that are set, then
        `extra`), safe to pass as a log call's `extra`."""
        payload: dict[str, Any] = {
            "event": self.event_type,
            "ts": self.ts,
            "step": self.trajectory_step,
        }
        for name in ("thought", "node_name", "latency_ms", "token_estimate", "error"):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        for key, value in self.extra.items():
            if key not in _LOG_RECORD_KEYS and key not in payload:
                payload[key] = value
        return payload


PlannerEventCallback: TypeAlias = Callable[[PlannerEvent], Awaitable[None] | None]
"""What `event_callback` is: called with each event; sync (PenguiFlow's) or async."""


class EmitFn(Protocol):
    """How a run's parts publish an event of the run (the loop hands one out): the loop fills
    in the time, the step and the thought, and sends the event everywhere."""

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None: ...


class RunEmitFn(Protocol):
    """The loop's own `emit`, which also sets the event's thought, latency and error."""

    async def __call__(
        self,
        event_type: str,
        extra: Mapping[str, Any],
        *,
        node_name: str | None = None,
        thought: str | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
    ) -> None: ...


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


#: events too frequent to log at INFO
_CHATTY = frozenset({"llm_stream_chunk", "stream_chunk", "artifact_chunk"})


async def publish(
    event: PlannerEvent,
    *,
    run_id: str,
    sinks: Sequence[Any],
    callback: PlannerEventCallback | None,
) -> None:
    """Log `event` (`penguiflow.planner`; stream chunks at DEBUG) and send it to every sink (as
    a `FlowEvent` named `planner_<event_type>`) and to the callback. A receiver that fails is
    logged and skipped: an observer must not break the run."""
    level = logging.DEBUG if event.event_type in _CHATTY else logging.INFO
    if logger.isEnabledFor(level):
        logger.log(level, event.event_type, extra=event.to_payload())
    if callback is None and not sinks:
        return
    receivers: list[tuple[Any, Any]] = []
    if sinks:
        flow_event = FlowEvent(
            event_type=f"planner_{event.event_type}",
            ts=event.ts,
            node_name=event.node_name,
            node_id=None,
            trace_id=run_id,
            attempt=event.trajectory_step,
            latency_ms=event.latency_ms,
            queue_depth_in=0,
            queue_depth_out=0,
            outgoing_edges=0,
            queue_maxsize=0,
            trace_pending=None,
            trace_inflight=0,
            trace_cancelled=False,
            extra=event.to_payload(),
        )
        receivers = [(sink, flow_event) for sink in sinks]
    if callback is not None:
        receivers.append((callback, event))
    for receiver, payload in receivers:
        try:
            result = receiver(payload)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("planner event receiver failed for %s", event.event_type)
