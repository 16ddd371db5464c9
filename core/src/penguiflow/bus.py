"""The message bus hook: every enqueue can be mirrored to an external bus.

`MessageBus` is the driver interface (one async method); `InMemoryMessageBus` is the embedded
implementation, useful for tests and for observing traffic in-process. Buses close with
`aclose()` (idempotent) or `async with`; a closed bus raises `BusClosedError`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigurationError, PenguiFlowError
from .resources import AsyncResource
from .state._errors import describe_resource

__all__ = ["BusClosedError", "BusEnvelope", "InMemoryMessageBus", "MessageBus"]


class BusClosedError(PenguiFlowError, RuntimeError):
    """A message bus was used after `aclose()`; `bus_name` names it (URL password masked)."""

    def __init__(self, bus: object) -> None:
        self.bus_name = describe_resource(bus)
        super().__init__(
            f"{self.bus_name} is closed (aclose() was called) and refuses further work; "
            "create a new bus to keep going"
        )


@dataclass(slots=True)
class BusEnvelope:
    """One item crossing one edge: `edge` is `"<source>-><target>"`, a missing end is `"*"`."""

    edge: str
    source: str
    target: str
    trace_id: str | None
    payload: Any
    headers: dict[str, Any] | None
    meta: dict[str, Any] | None


@runtime_checkable
class MessageBus(Protocol):
    """Receives a copy of every enqueued item; failures are logged, never raised.

    Drivers should also implement `async aclose()` (idempotent) and `async with`
    (`penguiflow.resources.AsyncResource` gives it). They are not part of the protocol, so
    older drivers still satisfy it: whoever closes a bus calls
    `penguiflow.resources.aclose_resource`, which also accepts `close()`.
    """

    async def publish(self, envelope: BusEnvelope) -> None: ...


class InMemoryMessageBus(AsyncResource):
    """Keeps published envelopes (the last `history` of them) and feeds live subscribers.

    `aclose()` ends every live subscription (after the envelopes already queued for it) and
    refuses later publishes and subscriptions; `envelopes` and `edges()` stay readable."""

    def __init__(self, *, history: int | None = 10_000) -> None:
        if history is not None and history < 0:
            raise ConfigurationError(f"history must be >= 0 or None (got {history})")
        self.envelopes: deque[BusEnvelope] = deque(maxlen=history)
        # `None` in a queue tells its subscriber that the bus closed.
        self._subscribers: list[tuple[str | None, asyncio.Queue[BusEnvelope | None]]] = []
        self._closed = False

    async def publish(self, envelope: BusEnvelope) -> None:
        if self._closed:
            raise BusClosedError(self)
        self.envelopes.append(envelope)
        for edge, queue in self._subscribers:
            if edge is None or edge == envelope.edge:
                queue.put_nowait(envelope)

    async def subscribe(self, edge: str | None = None) -> AsyncIterator[BusEnvelope]:
        """Yield envelopes published from now on (only those of `edge` when given); the
        iteration ends when the bus closes."""
        if self._closed:
            raise BusClosedError(self)
        queue: asyncio.Queue[BusEnvelope | None] = asyncio.Queue()
        entry = (edge, queue)
        self._subscribers.append(entry)
        try:
            while (envelope := await queue.get()) is not None:
                yield envelope
        finally:
            self._subscribers.remove(entry)

    async def aclose(self) -> None:
        """End live subscriptions and refuse further work (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for _, queue in self._subscribers:
            queue.put_nowait(None)

    def edges(self) -> list[str]:
        return [envelope.edge for envelope in self.envelopes]
