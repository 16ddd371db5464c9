"""The message bus hook: every enqueue can be mirrored to an external bus.

`MessageBus` is the driver interface (one async method); `InMemoryMessageBus` is the embedded
implementation, useful for tests and for observing traffic in-process.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["BusEnvelope", "InMemoryMessageBus", "MessageBus"]


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
    """Receives a copy of every enqueued item; failures are logged, never raised."""

    async def publish(self, envelope: BusEnvelope) -> None: ...


class InMemoryMessageBus:
    """Keeps published envelopes (the last `history` of them) and feeds live subscribers."""

    def __init__(self, *, history: int | None = 10_000) -> None:
        if history is not None and history < 0:
            raise ValueError(f"history must be >= 0 or None (got {history})")
        self.envelopes: deque[BusEnvelope] = deque(maxlen=history)
        self._subscribers: list[tuple[str | None, asyncio.Queue[BusEnvelope]]] = []

    async def publish(self, envelope: BusEnvelope) -> None:
        self.envelopes.append(envelope)
        for edge, queue in self._subscribers:
            if edge is None or edge == envelope.edge:
                queue.put_nowait(envelope)

    async def subscribe(self, edge: str | None = None) -> AsyncIterator[BusEnvelope]:
        """Yield envelopes published from now on (only those of `edge` when given)."""
        queue: asyncio.Queue[BusEnvelope] = asyncio.Queue()
        entry = (edge, queue)
        self._subscribers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(entry)

    def edges(self) -> list[str]:
        return [envelope.edge for envelope in self.envelopes]
