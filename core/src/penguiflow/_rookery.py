"""Trace-scoped round trips: a dispatcher that routes Rookery results to per-trace queues."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._graph import EdgeQueue
from .errors import InvalidTypeError
from .types import Message

if TYPE_CHECKING:
    from ._context import Context

__all__ = [
    "CancelledTrace",
    "ResultRouter",
    "TracedValue",
    "belongs_to",
    "stamp_trace",
    "unwrap",
]

_NOTHING: Any = object()


class TracedValue:
    """A raw (untraced) node result tagged with the trace it was produced for."""

    __slots__ = ("trace_id", "value")

    def __init__(self, trace_id: str, value: Any) -> None:
        self.trace_id = trace_id
        self.value = value

    def __repr__(self) -> str:
        return f"TracedValue({self.trace_id!r}, {self.value!r})"


class CancelledTrace:
    """Handed to a `fetch(trace_id=...)` that waits when its trace is cancelled."""

    __slots__ = ("trace_id",)

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id


def unwrap(item: Any) -> Any:
    return item.value if type(item) is TracedValue else item


def belongs_to(trace_id: str) -> Callable[[Any], bool]:
    def belongs(item: Any) -> bool:
        return getattr(item, "trace_id", None) == trace_id

    return belongs


def stamp_trace(msg: Any, trace_id: str) -> Any:
    """`msg` for a round trip on `trace_id` (a `Message` is copied, not changed)."""
    if isinstance(msg, Message):
        return msg if msg.trace_id == trace_id else msg.model_copy(update={"trace_id": trace_id})
    try:
        msg.trace_id = trace_id
    except Exception:
        raise InvalidTypeError(
            "emit(trace_id=...) requires a Message (or object with writable .trace_id)"
        ) from None
    return msg


class ResultRouter:
    """Owns the dispatcher task, per-trace result queues and the round-trip locks."""

    def __init__(self, rookery: Context, queue_maxsize: int) -> None:
        self._rookery = rookery
        self._queue_maxsize = queue_maxsize
        self.task: asyncio.Task[None] | None = None
        self.subscriptions: dict[str, EdgeQueue] = {}
        self.global_results: EdgeQueue | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._held: set[str] = set()
        self._in_hand: Any = _NOTHING

    @property
    def active(self) -> bool:
        return self.task is not None

    def start(self) -> None:
        if self.task is not None:
            return
        edges = max(1, len(self._rookery._incoming))
        maxsize = self._queue_maxsize * edges if self._queue_maxsize > 0 else 0
        if self.global_results is None:
            self.global_results = EdgeQueue(maxsize)
        self.task = asyncio.get_running_loop().create_task(
            self._dispatch(), name="penguiflow:rookery-dispatcher"
        )

    async def _dispatch(self) -> None:
        rookery = self._rookery
        assert self.global_results is not None
        while True:
            if not rookery._incoming and not rookery._buffer:
                # Nothing can ever arrive; park until stop() cancels us.
                await asyncio.Event().wait()
            item = await rookery.fetch_any()
            trace_id = getattr(item, "trace_id", None)
            queue = self.subscriptions.get(trace_id) if trace_id is not None else None
            if queue is not None:
                queue.put_nowait(item)
                continue
            try:
                await self.global_results.put(item)
            except asyncio.CancelledError:
                self._in_hand = item  # stop() hands it back; a result is never dropped
                raise

    # -- round trips ---------------------------------------------------------------------------

    async def acquire(self, trace_id: str) -> None:
        lock = self._locks.get(trace_id)
        if lock is None:
            lock = self._locks[trace_id] = asyncio.Lock()
        await lock.acquire()
        self._held.add(trace_id)

    def subscribe(self, trace_id: str) -> EdgeQueue:
        queue = self.subscriptions.get(trace_id)
        if queue is None:
            queue = self.subscriptions[trace_id] = EdgeQueue(0)
        return queue

    def release(self, trace_id: str) -> None:
        """End a round trip: free the lock, unsubscribe, hand leftovers to the global queue."""
        if trace_id in self._held:
            self._held.discard(trace_id)
            lock = self._locks.get(trace_id)
            if lock is not None:
                lock.release()
                if not lock.locked() and not getattr(lock, "_waiters", None):
                    del self._locks[trace_id]
        queue = self.subscriptions.pop(trace_id, None)
        if queue is not None and self.global_results is not None:
            while not queue.empty():
                leftover = queue.get_nowait()
                try:
                    self.global_results.put_nowait(leftover)
                except asyncio.QueueFull:
                    # Never drop a result: the dispatcher's queue grows past its bound here.
                    self.global_results._queue.append(leftover)

    async def fetch_trace(self, trace_id: str) -> Any:
        queue = self.subscribe(trace_id)
        try:
            return await queue.get()
        finally:
            self.release(trace_id)

    def cancel(self, trace_id: str) -> list[Any]:
        """Drop the trace's results and end its round trip; a `fetch(trace_id=...)` waiting
        for it receives a `CancelledTrace` (and releases the round trip itself)."""
        removed = self.purge(trace_id)
        queue = self.subscriptions.get(trace_id)
        if queue is not None and getattr(queue, "_getters", None):
            queue.put_nowait(CancelledTrace(trace_id))
        else:
            self.release(trace_id)
        return removed

    def purge(self, trace_id: str) -> list[Any]:
        removed: list[Any] = []
        queue = self.subscriptions.get(trace_id)
        if queue is not None:
            removed.extend(queue.remove_where(lambda _item: True))
        if self.global_results is not None:
            removed.extend(
                self.global_results.remove_where(
                    lambda item: getattr(item, "trace_id", None) == trace_id
                )
            )
        return removed

    async def stop(self) -> list[Any]:
        """Cancel the dispatcher, release every lock; return results nobody fetched yet."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        leftovers: list[Any] = []
        if self.global_results is not None:
            leftovers.extend(self.global_results._queue)
        if self._in_hand is not _NOTHING:
            leftovers.append(self._in_hand)
            self._in_hand = _NOTHING
        for queue in self.subscriptions.values():
            leftovers.extend(queue._queue)
        self.subscriptions.clear()
        self.global_results = None
        for trace_id in list(self._held):
            lock = self._locks.get(trace_id)
            if lock is not None and lock.locked():
                lock.release()
        self._held.clear()
        self._locks.clear()
        return leftovers
