"""Event recording for a flow: build a `FlowEvent` only when someone listens, then log it,
save it to the state store and hand it to each middleware (failures logged, never raised)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ._graph import Endpoint
from .metrics import FlowEvent

if TYPE_CHECKING:
    from ._context import Context
    from ._traces import TraceTable
    from ._worker import NodeWorker
    from .middlewares import Middleware
    from .node import Node
    from .state import StateStore

__all__ = ["EventRecorder", "logger"]

logger = logging.getLogger("penguiflow.core")

# Keys a LogRecord owns; an event extra with one of these names would make logging raise.
_RESERVED_LOG_KEYS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class EventRecorder:
    """The event half of `PenguiFlow` (kept apart so the flow module stays small)."""

    _middlewares: list[Middleware]
    _state_store: StateStore | None
    _traces: TraceTable
    _workers: list[NodeWorker]
    _queue_maxsize: int
    _background: set[asyncio.Task[Any]]

    def _inflight(self, trace_id: str) -> int:
        return sum(1 for worker in self._workers if worker.invoking == trace_id)

    # -- events --------------------------------------------------------------------------------

    def _observed(self, level: int) -> bool:
        """Whether an event at `level` would reach anyone (cheap; checked before building)."""
        return (
            bool(self._middlewares) or self._state_store is not None or logger.isEnabledFor(level)
        )

    async def _record(
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
            pending = state.pending if state is not None else 0
            cancelled = state is not None and state.cancelled
            inflight = self._inflight(trace_id)
        event = FlowEvent(
            event_type=event_type,
            ts=time.time(),
            node_name=node_name,
            node_id=node_id,
            trace_id=trace_id,
            attempt=attempt,
            latency_ms=latency_ms,
            queue_depth_in=ctx.queue_depth_in(),
            queue_depth_out=ctx.queue_depth_out(),
            outgoing_edges=ctx.outgoing_count(),
            queue_maxsize=self._queue_maxsize,
            trace_pending=pending,
            trace_inflight=inflight,
            trace_cancelled=cancelled,
            extra=extra or {},
        )
        await self._publish_event(event, level, exc)

    async def record_remote_event(
        self,
        *,
        event: str,
        node: Node,
        context: Context,
        trace_id: str | None,
        latency_ms: float | None,
        level: int = logging.INFO,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a remote-call event for `node` (used by `RemoteNode`)."""
        await self._record(event, context, trace_id, 0, latency_ms, level, extra)

    async def _publish_event(self, event: FlowEvent, level: int, exc: BaseException | None) -> None:
        if logger.isEnabledFor(level):
            payload = {
                (f"extra_{key}" if key in _RESERVED_LOG_KEYS else key): value
                for key, value in event.to_payload().items()
            }
            logger.log(level, event.event_type, extra=payload, exc_info=exc)
        store = self._state_store
        if store is not None:
            # The save runs as its own task, shielded: stopping the flow cancels the worker
            # that produced the event, not the write (stop() awaits every such task).
            saving = asyncio.get_running_loop().create_task(self._save_event(store, event))
            self._background.add(saving)
            saving.add_done_callback(self._background.discard)
            await asyncio.shield(saving)
        for middleware in list(self._middlewares):
            try:
                await middleware(event)
            except Exception as mw_exc:
                logger.exception(
                    "middleware_error",
                    extra={
                        "event_type": event.event_type,
                        "trace_id": event.trace_id,
                        "exception": repr(mw_exc),
                    },
                )

    async def _save_event(self, store: StateStore, event: FlowEvent) -> None:
        from .state import StoredEvent

        try:
            await store.save_event(StoredEvent.from_flow_event(event))
        except Exception as exc:
            logger.exception(
                "state_store_save_failed",
                extra={
                    "event": event.event_type,
                    "trace_id": event.trace_id,
                    "kind": event.event_type,
                    "exception": repr(exc),
                },
            )
