"""Delivering `FlowEvent`s: to the log, a state store, each middleware and the process's
event sinks (`penguiflow.observability`, as an `Event` carrying the current span and tenant).

Runtimes build an event only when `observed(level)` says someone listens, then `publish` it.
Listeners never break the runtime: a failing store, middleware or sink is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import observability
from .errors import describe_exception_repr
from .tracecontext import current_span

if TYPE_CHECKING:
    from .metrics import FlowEvent
    from .middlewares import Middleware
    from .state import StateStore

__all__ = ["EventPublisher", "logger"]

logger = logging.getLogger("penguiflow.core")

_sinks = observability._sinks
_current_tenant = observability._current_tenant

# Keys a LogRecord owns; an event extra with one of these names would make logging raise.
_RESERVED_LOG_KEYS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class EventPublisher:
    """The listeners of one flow (or of one worker process of a distributed flow).

    `middlewares` is shared with its owner, so middlewares added later are seen at once. The
    state store keeps each trace's history: an event without a trace id (a worker stopping,
    an untraced message) is logged and handed to the middlewares, not saved, since no
    `load_history(trace_id)` could ever read it back."""

    __slots__ = ("_saving", "_settled", "middlewares", "state_store")

    def __init__(self, middlewares: list[Middleware], state_store: StateStore | None) -> None:
        self.middlewares = middlewares
        self.state_store = state_store
        #: saves in flight per trace, and who waits for a trace to have none
        self._saving: dict[str, int] = {}
        self._settled: dict[str, list[asyncio.Future[None]]] = {}
        # Read the hook's sinks now (and again when the flow starts: `refresh`), so that
        # `observed` can look at the snapshot alone on the per-message path.
        observability.event_sinks()

    @staticmethod
    def refresh() -> None:
        """Re-read the event sinks if the hook host changed (called when a flow starts)."""
        observability.event_sinks()

    async def settled(self, trace_id: str) -> None:
        """Return once no event of `trace_id` is being saved: a history read right after a
        result was fetched then includes the events recorded while it was delivered."""
        while self._saving.get(trace_id):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._settled.setdefault(trace_id, []).append(waiter)
            await waiter

    def observed(self, level: int) -> bool:
        """Whether an event at `level` would reach anyone (cheap; checked before building)."""
        return (
            bool(self.middlewares or _sinks.snapshot)
            or self.state_store is not None
            or logger.isEnabledFor(level)
        )

    def sinks_only(self, level: int) -> bool:
        """Whether an event at `level` goes to the event sinks alone (no middleware, no state
        store, not logged): a runtime may then skip the `FlowEvent` and build the sinks'
        `Event` directly (`observability._flow_envelope`)."""
        return not self.middlewares and self.state_store is None and not logger.isEnabledFor(level)

    async def publish(self, event: FlowEvent, level: int, exc: BaseException | None) -> None:
        if logger.isEnabledFor(level):
            _log(event, level, exc)
        store = self.state_store
        trace_id = event.trace_id
        if store is not None and trace_id is not None:
            # Stopping the flow cancels the task that produced the event, not the write.
            import anyio

            saving = self._saving
            saving[trace_id] = saving.get(trace_id, 0) + 1
            try:
                with anyio.CancelScope(shield=True):
                    await _save(store, event)
            finally:
                if saving[trace_id] > 1:
                    saving[trace_id] -= 1
                else:
                    del saving[trace_id]
                    for waiter in self._settled.pop(trace_id, ()):
                        if not waiter.done():
                            waiter.set_result(None)
        for middleware in _snapshot(self.middlewares):
            try:
                await middleware(event)
            except Exception as mw_exc:
                logger.exception(
                    "middleware_error",
                    extra={
                        "event_type": event.event_type,
                        "trace_id": event.trace_id,
                        "exception": _safe_repr(mw_exc),
                    },
                )
        if _sinks.snapshot:
            await _to_sinks(event)


async def _to_sinks(event: FlowEvent) -> None:
    # The engine runs each invocation in its span (`using_span`): events recorded during it
    # carry that span and its parent; events outside one (a worker stopping) carry none.
    span = current_span()
    envelope = observability.Event.from_flow_event(
        event,
        span=span,
        parent_span_id=span.parent_span_id if span is not None else None,
        tenant=_current_tenant.get(),
    )
    await observability.publish(envelope)


def _snapshot(middlewares: list[Middleware]) -> Sequence[Middleware]:
    # A middleware may add or remove middlewares while being called.
    return tuple(middlewares)


def _log(event: FlowEvent, level: int, exc: BaseException | None) -> None:
    payload = {
        (f"extra_{key}" if key in _RESERVED_LOG_KEYS else key): value
        for key, value in event.to_payload().items()
    }
    try:
        logger.log(level, event.event_type, extra=payload, exc_info=exc)
    except Exception:
        # A handler that cannot format the exception (its __str__ raises, say) must not turn
        # into a failure of the runtime: log the event without it.
        logger.log(level, "%s (its exception could not be formatted)", event.event_type)


async def _save(store: StateStore, event: FlowEvent) -> None:
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
                "exception": _safe_repr(exc),
            },
        )


def _safe_repr(exc: BaseException) -> str:
    return describe_exception_repr(exc)
