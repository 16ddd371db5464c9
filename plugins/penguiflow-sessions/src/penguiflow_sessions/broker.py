"""In-memory fan-out of a session's updates to its live subscribers.

Each subscriber has its own bounded queue and filters. Publishing never waits: when a
subscriber's queue is full, a critical update (RESULT, ERROR, NOTIFICATION, STATUS_CHANGE)
makes room by evicting the oldest queued update (a non-critical one when there is one), and
any other update is dropped for that subscriber. Both are counted, per subscriber and for the
broker, so a slow client is visible rather than silently starved.

The broker keeps nothing: the session persists each update before publishing it, and a
subscriber that lost updates re-reads them from the store by cursor.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from penguiflow.errors import ConfigurationError, UsageError
from penguiflow.resources import AsyncResource

from .models import StateUpdate, UpdateType

__all__ = ["CRITICAL_UPDATE_TYPES", "UpdateBroker", "UpdateSubscription"]

#: Update types that are never dropped for a full queue (they evict older updates instead).
CRITICAL_UPDATE_TYPES = frozenset(
    {UpdateType.RESULT, UpdateType.ERROR, UpdateType.NOTIFICATION, UpdateType.STATUS_CHANGE}
)


def _check_size(max_queue_size: Any) -> int:
    if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int):
        raise ConfigurationError(
            f"max_queue_size must be an integer >= 0 (0: unbounded), got {max_queue_size!r}"
        )
    if max_queue_size < 0:
        raise ConfigurationError(
            f"max_queue_size must be >= 0 (0: unbounded), got {max_queue_size}"
        )
    return max_queue_size


def _update_types(values: Iterable[UpdateType | str]) -> frozenset[UpdateType]:
    kinds: set[UpdateType] = set()
    for value in values:
        try:
            kinds.add(UpdateType(value))
        except ValueError:
            valid = ", ".join(kind.value for kind in UpdateType)
            raise ConfigurationError(
                f"unknown update type {value!r} in update_types; valid: {valid}"
            ) from None
    return frozenset(kinds)


class UpdateSubscription(AsyncResource):
    """One subscriber's queue: iterate it (`async for update in sub`) or `await sub.get()`.

    `dropped` counts updates this subscriber lost because its queue was full and they were
    not critical; `evicted` counts queued updates pushed out by critical ones. Closing it
    (`aclose()`, idempotent) unsubscribes and ends its iteration at once; closing the broker
    ends it after the updates already queued.

    PenguiFlow's `subscribe` returned `(queue, unsubscribe)`; unpacking a subscription the
    same way gives itself (it has `get`, `get_nowait`, `empty` and `qsize`) and an
    unsubscribe coroutine function."""

    def __init__(
        self,
        broker: UpdateBroker,
        *,
        maxsize: int,
        task_ids: frozenset[str] | None,
        update_types: frozenset[UpdateType] | None,
    ) -> None:
        self._broker: UpdateBroker | None = broker
        self._maxsize = maxsize
        self.task_ids = task_ids
        self.update_types = update_types
        self._items: deque[StateUpdate] = deque()
        self._wake = asyncio.Event()
        self._ended = False  # no more updates will arrive
        self.dropped = 0
        self.evicted = 0

    @property
    def closed(self) -> bool:
        """Whether this subscription receives no more updates."""
        return self._ended

    def matches(self, update: StateUpdate) -> bool:
        """Whether `update` passes this subscription's filters."""
        if self.task_ids is not None and update.task_id not in self.task_ids:
            return False
        return self.update_types is None or update.update_type in self.update_types

    def _offer(self, update: StateUpdate) -> bool:
        """Queue `update` (the broker has checked the filters); False when it was dropped."""
        if self._maxsize and len(self._items) >= self._maxsize:
            if update.update_type not in CRITICAL_UPDATE_TYPES:
                self.dropped += 1
                return False
            self._evict_one()
        self._items.append(update)
        self._wake.set()
        return True

    def _evict_one(self) -> None:
        # The oldest non-critical update goes first: losing a PROGRESS matters less than
        # losing an earlier RESULT. Only a queue full of critical updates loses one of them.
        for index, queued in enumerate(self._items):
            if queued.update_type not in CRITICAL_UPDATE_TYPES:
                del self._items[index]
                break
        else:
            self._items.popleft()
        self.evicted += 1

    def _end(self, *, discard: bool) -> None:
        self._ended = True
        if discard:
            self._items.clear()
        self._wake.set()

    def empty(self) -> bool:
        """Whether no update is queued."""
        return not self._items

    def qsize(self) -> int:
        """How many updates are queued."""
        return len(self._items)

    def get_nowait(self) -> StateUpdate:
        """The oldest queued update; `asyncio.QueueEmpty` when there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> StateUpdate:
        """Wait for the next update; `UsageError` once the subscription has ended and its
        queue is empty (iterate it instead to simply stop there)."""
        while not self._items:
            if self._ended:
                raise UsageError(
                    "this update subscription is closed and has no queued updates; "
                    "subscribe again to receive more"
                )
            self._wake.clear()
            await self._wake.wait()
        return self._items.popleft()

    def __aiter__(self) -> UpdateSubscription:
        return self

    async def __anext__(self) -> StateUpdate:
        try:
            return await self.get()
        except UsageError:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Unsubscribe and end iteration now (queued updates are discarded)."""
        broker, self._broker = self._broker, None
        if broker is not None:
            broker._remove(self)
        self._end(discard=True)

    async def unsubscribe(self) -> None:
        """`aclose()` (PenguiFlow's unsubscribe callback)."""
        await self.aclose()

    def __iter__(self) -> Iterator[Any]:
        # PenguiFlow's `queue, unsubscribe = await broker.subscribe(...)`.
        unsubscribe: Callable[[], Awaitable[None]] = self.aclose
        return iter((self, unsubscribe))


class UpdateBroker(AsyncResource):
    """Publishes updates to subscribers; see the module docstring for the queue policy.

    `max_queue_size` bounds each subscriber's queue (0: unbounded, as in PenguiFlow; a
    session passes `SessionLimits.update_queue_size`)."""

    def __init__(self, *, max_queue_size: int = 0) -> None:
        self._max_queue_size = _check_size(max_queue_size)
        self._subs: list[UpdateSubscription] = []
        self._closed = False
        self._dropped_total = 0
        self._evicted_total = 0
        self._published = 0

    @property
    def max_queue_size(self) -> int:
        return self._max_queue_size

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    @property
    def published(self) -> int:
        """Updates published so far."""
        return self._published

    @property
    def dropped_total(self) -> int:
        """Non-critical updates dropped for full queues, over every subscriber (closed ones
        included)."""
        return self._dropped_total

    @property
    def evicted_total(self) -> int:
        """Queued updates evicted by critical ones, over every subscriber."""
        return self._evicted_total

    def subscribe_nowait(
        self,
        *,
        task_ids: Iterable[str] | None = None,
        update_types: Iterable[UpdateType | str] | None = None,
    ) -> UpdateSubscription:
        """A new subscription receiving the updates published from now on that match its
        filters: `task_ids` and `update_types` (None or empty: all, as in PenguiFlow)."""
        if self._closed:
            raise UsageError("the update broker is closed; its session has ended")
        ids = frozenset(task_ids) if task_ids else None
        kinds = _update_types(update_types) if update_types else None
        sub = UpdateSubscription(
            self, maxsize=self._max_queue_size, task_ids=ids, update_types=kinds
        )
        self._subs.append(sub)
        return sub

    async def subscribe(
        self,
        *,
        task_ids: Iterable[str] | None = None,
        update_types: Iterable[UpdateType | str] | None = None,
    ) -> UpdateSubscription:
        """`subscribe_nowait`, as a coroutine (PenguiFlow's spelling)."""
        return self.subscribe_nowait(task_ids=task_ids, update_types=update_types)

    def publish(self, update: StateUpdate) -> int:
        """Offer `update` to every matching subscriber without waiting; returns how many
        queued it. `UsageError` once the broker is closed."""
        if self._closed:
            raise UsageError(
                f"cannot publish update {update.update_id} of task {update.task_id!r}: the "
                "update broker is closed (its session has ended)"
            )
        self._published += 1
        delivered = 0
        for sub in tuple(self._subs):
            if not sub.matches(update):
                continue
            dropped, evicted = sub.dropped, sub.evicted
            if sub._offer(update):
                delivered += 1
            self._dropped_total += sub.dropped - dropped
            self._evicted_total += sub.evicted - evicted
        return delivered

    def _remove(self, sub: UpdateSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    async def aclose(self) -> None:
        """Stop taking updates; each subscription ends after the updates it has queued."""
        if self._closed:
            return
        self._closed = True
        subs, self._subs = self._subs, []
        for sub in subs:
            sub._broker = None
            sub._end(discard=False)

    async def close(self) -> None:
        """`aclose()`."""
        await self.aclose()
