"""Per-trace accounting: how many items of a trace are queued or being processed.

The count goes up when a traced item is enqueued anywhere in the flow and down when a worker
is done with it, `fetch()` returns it, or `cancel()` purges it. A trace whose count reaches
zero is forgotten. Cancel events are created lazily: most traces are never cancelled, and an
`asyncio.Event` per trace would cost more than the rest of the bookkeeping together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["TraceState", "TraceTable"]


class TraceState:
    """What the runtime knows about one live trace."""

    __slots__ = ("cancelled", "event", "pending", "waiters")

    def __init__(self) -> None:
        self.pending = 0
        self.cancelled = False
        self.event: asyncio.Event | None = None
        self.waiters: list[asyncio.Future[None]] | None = None


class TraceTable:
    """All live traces of one flow, with capacity waiting for streamed chunks."""

    __slots__ = ("_on_cancel_finish", "_on_drained", "maxsize", "states")

    def __init__(
        self,
        *,
        maxsize: int,
        on_drained: Callable[[str], None],
        on_cancel_finish: Callable[[str], None],
    ) -> None:
        self.maxsize = maxsize
        self.states: dict[str, TraceState] = {}
        self._on_drained = on_drained
        self._on_cancel_finish = on_cancel_finish

    def add(self, trace_id: str) -> TraceState:
        state = self.states.get(trace_id)
        if state is None:
            state = self.states[trace_id] = TraceState()
        state.pending += 1
        return state

    def finalize(self, trace_id: str) -> None:
        """One item of the trace is done; forget the trace when none is left."""
        state = self.states.get(trace_id)
        if state is None:
            return
        state.pending -= 1
        if state.pending > 0:
            if state.waiters and (self.maxsize <= 0 or state.pending <= self.maxsize):
                self._wake(state)
            return
        del self.states[trace_id]
        if state.waiters:
            self._wake(state)
        self._on_drained(trace_id)
        if state.cancelled:
            self._on_cancel_finish(trace_id)

    def pending(self, trace_id: str) -> int:
        state = self.states.get(trace_id)
        return state.pending if state is not None else 0

    def is_cancelled(self, trace_id: str) -> bool:
        state = self.states.get(trace_id)
        return state is not None and state.cancelled

    def ensure_event(self, trace_id: str) -> asyncio.Event:
        state = self.states.get(trace_id)
        if state is None:
            state = self.states[trace_id] = TraceState()
        if state.event is None:
            state.event = asyncio.Event()
            if state.cancelled:
                state.event.set()
        return state.event

    def mark_cancelled(self, trace_id: str) -> bool:
        """Flag the trace as cancelled; True the first time only."""
        state = self.states.get(trace_id)
        if state is None:
            state = self.states[trace_id] = TraceState()
        if state.cancelled:
            return False
        state.cancelled = True
        if state.event is not None:
            state.event.set()
        return True

    async def wait_capacity(self, trace_id: str, *, offset: int) -> None:
        """Wait while the trace has `maxsize` or more items in flight (beyond `offset`)."""
        if self.maxsize <= 0:
            return
        while True:
            state = self.states.get(trace_id)
            if state is None or state.pending - offset < self.maxsize:
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if state.waiters is None:
                state.waiters = []
            state.waiters.append(waiter)
            try:
                await waiter
            finally:
                if state.waiters is not None and waiter in state.waiters:
                    state.waiters.remove(waiter)

    def wake_all(self) -> None:
        for state in self.states.values():
            if state.waiters:
                self._wake(state)

    def clear(self) -> None:
        self.wake_all()
        self.states.clear()

    @staticmethod
    def _wake(state: TraceState) -> None:
        waiters, state.waiters = state.waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)
