"""The engine's view of an in-process flow: events with queue and trace statistics, and the
flow's own routing (see `penguiflow.runtime.Outbox`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._graph import Endpoint
from .metrics import FlowEvent
from .observability import _current_tenant, _flow_envelope, _sink_failed, _sinks
from .tracecontext import _current as _current_span

if TYPE_CHECKING:
    from ._context import Context
    from ._engine import Lane
    from ._events import EventPublisher
    from ._traces import TraceTable

__all__ = ["LocalOutbox"]


class LocalOutbox:
    """Implements `Outbox` for `PenguiFlow`; the flow hands over its routing callables."""

    __slots__ = (
        "_events",
        "_queue_maxsize",
        "_traces",
        "emit",
        "is_cancelled",
        "lanes",
        "observed",
        "to_rookery",
    )

    def __init__(
        self,
        *,
        traces: TraceTable,
        events: EventPublisher,
        queue_maxsize: int,
        emit: Callable[[Any, Any], Coroutine[Any, Any, None]],
        to_rookery: Callable[[Any, Any], Coroutine[Any, Any, None]],
    ) -> None:
        self._traces = traces
        self._events = events
        self._queue_maxsize = queue_maxsize
        self.observed = events.observed
        self.is_cancelled = traces.is_cancelled
        self.emit = emit
        self.to_rookery = to_rookery
        #: one lane per running node worker (to count a trace's invocations in flight)
        self.lanes: list[Lane] = []

    def discard_attempt(self, ctx: Any) -> None:
        """Outputs of the in-process runtime are sent as they are emitted: nothing to drop."""

    def inflight(self, trace_id: str) -> int:
        return sum(1 for lane in self.lanes if lane.invoking == trace_id)

    async def record(
        self,
        event_type: str,
        ctx: Context,
        trace_id: str | None,
        attempt: int,
        latency_ms: float | None,
        level: int,
        extra: dict[str, Any] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        owner = ctx.owner
        if isinstance(owner, Endpoint):
            node_name: str | None = owner.name
            node_id: str | None = owner.name
        else:
            node_name, node_id = owner.name, owner.node_id
        pending: int | None = None
        cancelled = False
        inflight = 0
        if trace_id is not None:
            state = self._traces.states.get(trace_id)
            if state is None:
                pending = 0
            else:
                pending = state.pending
                cancelled = state.cancelled
            for lane in self.lanes:  # `inflight`, inlined (this runs twice a hop)
                if lane.invoking == trace_id:
                    inflight += 1
        # `ctx.queue_depth_in()` / `_out()`, inlined for the same reason (an edge's queue is
        # an `EdgeQueue`, whose deque `qsize()` measures).
        depth_in = 0
        for floe in ctx._incoming.values():
            depth_in += len(floe.queue._queue)
        outgoing = ctx._outgoing
        depth_out = 0
        for floe in outgoing.values():
            depth_out += len(floe.queue._queue)
        events = self._events
        if events.sinks_only(level):
            # Only event sinks listen: no FlowEvent, the sinks' Event straight from the fields
            # (what `Event.from_flow_event` would make of the FlowEvent).
            span = _current_span.get()
            envelope = _flow_envelope(
                event_type,
                time.time(),
                node_name,
                node_id,
                trace_id,
                attempt,
                latency_ms,
                depth_in,
                depth_out,
                len(outgoing),
                self._queue_maxsize,
                pending,
                inflight,
                cancelled,
                dict(extra) if extra else {},
                span,
                span.parent_span_id if span is not None else None,
                _current_tenant.get(),
            )
            for sink in _sinks.snapshot:
                try:
                    await sink(envelope)
                except Exception as sink_exc:
                    _sink_failed(sink, envelope, sink_exc)
            return
        event = FlowEvent(
            event_type=event_type,
            ts=time.time(),
            node_name=node_name,
            node_id=node_id,
            trace_id=trace_id,
            attempt=attempt,
            latency_ms=latency_ms,
            queue_depth_in=depth_in,
            queue_depth_out=depth_out,
            outgoing_edges=len(outgoing),
            queue_maxsize=self._queue_maxsize,
            trace_pending=pending,
            trace_inflight=inflight,
            trace_cancelled=cancelled,
            extra=extra or {},
        )
        await events.publish(event, level, exc)
