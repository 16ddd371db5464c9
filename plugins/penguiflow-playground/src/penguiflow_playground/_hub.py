"""`EventHub`: the playground's observability sink. It fans every event out to the live
views that watch its trace or session, and records the traces the playground runs in the
state store, where the history finds them after a restart.

Publishing must stay cheap and never block the agent (a sink is awaited by whoever
publishes): the sink only converts the event and puts it on queues. Saving happens in one
writer task, and a live view that reads too slowly loses its oldest events, never the run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from penguiflow.errors import describe_exception
from penguiflow.observability import Event, add_event_sink
from penguiflow.resources import AsyncResource

from ._events import event_view, trace_steps, trace_timeline
from ._gaps import trace_gaps

__all__ = ["INDEX_KEY", "EventHub", "LiveSubscription", "TraceRecord"]

logger = logging.getLogger("penguiflow_playground")

#: where the trace index lives in a store with the `memory_state` capability
INDEX_KEY = "penguiflow:playground:traces"
#: traces kept in the index (oldest dropped first)
_INDEX_MAX = 2000
#: traces whose events are also kept in memory (for a store that cannot save events)
_MEMORY_TRACES = 200
#: events a live view may have waiting before its oldest are dropped
_QUEUE_MAX = 2048


@dataclass(slots=True)
class TraceRecord:
    """One run the playground started: a chat turn, an AG-UI run, a flow message."""

    trace_id: str
    session_id: str | None
    tenant: str | None
    user: str | None
    kind: str
    title: str
    task_id: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    status: str = "running"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


class LiveSubscription:
    """The events of some traces (or of one session's traces), as they are published."""

    def __init__(self, hub: EventHub, trace_ids: frozenset[str], session_id: str | None) -> None:
        self._hub = hub
        self.trace_ids = trace_ids
        self.session_id = session_id
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE_MAX)
        #: events dropped because the reader was too slow
        self.dropped = 0

    def wants(self, view: dict[str, Any]) -> bool:
        trace_id = view.get("trace_id")
        if not self.trace_ids and self.session_id is None:
            return True
        if trace_id in self.trace_ids:
            return True
        if self.session_id is not None and trace_id is not None:
            record = self._hub.record(str(trace_id))
            return record is not None and record.session_id == self.session_id
        return False

    def offer(self, view: dict[str, Any]) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(view)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        self._hub._subscriptions.discard(self)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class EventHub(AsyncResource):
    """Receives every observability event of the process (`install()` adds it as a sink)."""

    def __init__(self, store: Any = None) -> None:
        #: the state store traces are recorded in (None: this process's memory only)
        self.store: Any = store
        self._seq = 0
        self._subscriptions: set[LiveSubscription] = set()
        self._index: OrderedDict[str, TraceRecord] = OrderedDict()
        self._memory: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self._pending: asyncio.Queue[dict[str, Any] | None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._remove: Any = None
        self._closed = False
        self._saves_events = store is not None and callable(getattr(store, "save_event", None))
        self._saves_index = store is not None and callable(
            getattr(store, "save_memory_state", None)
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the saved trace index and start receiving events."""
        if self._saves_index:
            saved = await self.store.load_memory_state(INDEX_KEY)
            for item in (saved or {}).get("traces", []):
                record = TraceRecord.from_dict(item)
                self._index[record.trace_id] = record
        if self._remove is None:
            self._remove = add_event_sink(self._sink)

    async def aclose(self) -> None:
        """Stop receiving, end the live views, write what is pending (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._remove is not None:
            self._remove()
            self._remove = None
        for subscription in list(self._subscriptions):
            subscription.close()
        await self.flush()
        if self._writer is not None:
            assert self._pending is not None
            self._pending.put_nowait(None)
            with contextlib.suppress(Exception):
                await self._writer
            self._writer = None

    # -- the sink ------------------------------------------------------------------------------

    async def _sink(self, event: Event) -> None:
        self._seq += 1
        view = event_view(event, self._seq)
        for subscription in list(self._subscriptions):
            if subscription.wants(view):
                subscription.offer(view)
        trace_id = view.get("trace_id")
        if trace_id is None:
            return
        kept = self._memory.get(trace_id)
        if kept is None:
            kept = self._memory[trace_id] = deque(maxlen=5000)
            if len(self._memory) > _MEMORY_TRACES:
                self._memory.popitem(last=False)
        kept.append(view)
        if self._saves_events and trace_id in self._index:
            self._queue().put_nowait(view)

    def _queue(self) -> asyncio.Queue[dict[str, Any] | None]:
        if self._pending is None:
            self._pending = asyncio.Queue()
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        return self._pending

    async def _write(self) -> None:
        from penguiflow.state import StoredEvent

        assert self._pending is not None
        while True:
            view = await self._pending.get()
            try:
                if view is None:
                    return
                attributes = view.get("attributes") or {}
                stored = StoredEvent(
                    trace_id=view["trace_id"],
                    ts=float(view["ts"]),
                    kind=f"{view['family']}.{view['name']}",
                    node_name=attributes.get("node_name"),
                    node_id=attributes.get("node_id"),
                    payload=view,
                )
                await self.store.save_event(stored)
            except Exception as exc:  # the history loses an event; the run goes on
                logger.warning("playground: saving an event failed: %s", describe_exception(exc))
            finally:
                self._pending.task_done()

    async def flush(self) -> None:
        """Wait until every event received so far is saved."""
        if self._pending is not None and self._writer is not None and not self._writer.done():
            await self._pending.join()

    # -- live views ----------------------------------------------------------------------------

    def subscribe(
        self, *, trace_ids: Iterable[str] = (), session_id: str | None = None
    ) -> LiveSubscription:
        """Events published from now on of `trace_ids` or of the traces of `session_id`
        (every event when neither is given). Close it when the client goes."""
        subscription = LiveSubscription(self, frozenset(trace_ids), session_id)
        self._subscriptions.add(subscription)
        return subscription

    def recent(self, trace_id: str) -> list[dict[str, Any]]:
        """The events of `trace_id` received by this process (for a view opened late)."""
        return list(self._memory.get(trace_id, ()))

    # -- the trace index -----------------------------------------------------------------------

    def record(self, trace_id: str) -> TraceRecord | None:
        return self._index.get(trace_id)

    async def register(self, record: TraceRecord) -> None:
        """Start recording `record.trace_id` (its events are saved from now on)."""
        self._index[record.trace_id] = record
        self._index.move_to_end(record.trace_id)
        while len(self._index) > _INDEX_MAX:
            self._index.popitem(last=False)
        await self._save_index()

    async def finish(self, trace_id: str, status: str) -> None:
        record = self._index.get(trace_id)
        if record is None:
            return
        record.status = status
        record.ended_at = time.time()
        await self._save_index()

    async def _save_index(self) -> None:
        if not self._saves_index:
            return
        try:
            traces = [record.to_dict() for record in self._index.values()]
            await self.store.save_memory_state(INDEX_KEY, {"traces": traces})
        except Exception as exc:  # the history is incomplete; the run goes on
            logger.warning("playground: saving the trace index failed: %s", describe_exception(exc))

    def search(
        self,
        *,
        tenant: str | None = None,
        session_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        limit: int = 100,
    ) -> list[TraceRecord]:
        """Recorded traces, newest first, narrowed by tenant, session, start time (seconds
        since the epoch) and a piece of text of their title or id."""
        found = []
        needle = (text or "").lower()
        for record in reversed(self._index.values()):
            if tenant is not None and record.tenant != tenant:
                continue
            if session_id is not None and record.session_id != session_id:
                continue
            if since is not None and record.started_at < since:
                continue
            if until is not None and record.started_at > until:
                continue
            if needle and needle not in record.title.lower() and needle not in record.trace_id:
                continue
            found.append(record)
            if len(found) >= limit:
                break
        return found

    async def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace: its record, its events (from the store, else this process's memory),
        its timeline, the gaps in it (pauses, long idle waits) and its steps; None when
        nothing is known of it."""
        record = self._index.get(trace_id)
        events: list[dict[str, Any]] = []
        if self._saves_events:
            await self.flush()
            stored = await self.store.load_history(trace_id)
            events = [
                e.payload for e in stored if isinstance(e.payload, dict) and "family" in e.payload
            ]
        if not events:
            events = self.recent(trace_id)
        if record is None and not events:
            return None
        events.sort(key=lambda v: (float(v.get("ts") or 0.0), int(v.get("seq") or 0)))
        return {
            "trace": record.to_dict() if record is not None else {"trace_id": trace_id},
            "events": events,
            "timeline": trace_timeline(events),
            "gaps": trace_gaps(events),
            "steps": trace_steps(events),
        }
