"""`RedisFlow`: the client side of a flow on the redis runtime (emit, fetch, cancel).

The client writes messages to the ingress nodes' streams and reads its own reply stream,
to which workers write the results (and stream chunks) of the traces it emitted. A flow split
into shards (`_shards`) gets each trace's messages in the trace's shard, and the client has a
reply stream, and a reader, in every shard (`_client_shards`); it learns the shard count when
it first reaches Redis (the first emit or the readers' start), and refuses to go on with
`ShardCountMismatch` if the flow was started with another.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json, to_json

from penguiflow.core import TraceCancelled
from penguiflow.errors import (
    FlowError,
    FlowErrorCode,
    InvalidTypeError,
    UnknownNameError,
    UsageError,
    describe_exception,
)
from penguiflow.node import Node
from penguiflow.registry import ModelRegistry
from penguiflow.resources import redact_url
from penguiflow.runtime import FlowDefinition, FlowLifecycle, FlowResource, FlowTarget
from penguiflow.tracecontext import stamp_message
from penguiflow.types import FinalAnswer, Message, StreamChunk

from ._backlog import BacklogGate
from ._client_shards import ClientShard, client_shards
from ._connect import RedisConnections
from ._emits import UNTRACED_EMIT_SCRIPT, EmitBatcher
from ._shards import shard_of
from ._streams import EMIT_SCRIPT, RedisRuntimeUnavailable
from ._worker import connection_errors

if TYPE_CHECKING:
    from penguiflow.middlewares import Middleware
    from penguiflow.state import StateStore, StoredEvent

    from .runtime import RedisRuntime

__all__ = ["RedisFlow"]

logger = logging.getLogger("penguiflow_redis.client")

_SEEN_CHUNKS = 100_000
_STOP_FIELD = "stop"
_READER_STOP_S = 5.0
#: how long one read of the reply stream blocks: stop() wakes the reader with an entry and a
#: lost connection ends the read at once, so this only bounds an idle client's reads (one
#: command a second). It must stay under the connection's socket timeout (redis-py 8 sets 5 s
#: by default), or an idle read would look like an outage.
_READ_BLOCK_MS = 1000
_READ_COUNT = 256
#: entries read are deleted together, with a read, once this many wait or this long passed:
#: a busy client pays for deleting results only every few hundred of them
_DELETE_EVERY = 256
_DELETE_AFTER_S = 0.5
#: traces whose results a caller asked for by trace id, kept while they hold results or
#: waiters; past this many, the oldest idle ones are forgotten (a web app emitting every request
#: with its own trace id would otherwise grow one per request for ever)
_MAX_IDLE_TRACE_INBOXES = 10_000


class _Inbox:
    """Results waiting to be fetched; a waiter is woken by a result or failed by an outage."""

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()

    def put(self, item: Any) -> None:
        self.items.append(item)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.items:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def fail(self, error: BaseException) -> None:
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def drop(self, keep: Callable[[Any], bool]) -> int:
        before = len(self.items)
        self.items = deque(item for item in self.items if keep(item))
        return before - len(self.items)

    def take(self, chosen: Callable[[Any], bool]) -> list[Any]:
        """Remove and return the items `chosen` picks, in arrival order."""
        taken = [item for item in self.items if chosen(item)]
        if taken:
            self.items = deque(item for item in self.items if not chosen(item))
        return taken

    @property
    def idle(self) -> bool:
        """Nothing waiting in it and nobody waiting on it."""
        return not self.items and not any(not w.done() for w in self._waiters)

    async def get(self) -> Any:
        while not self.items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._wake()
                raise
        return self.items.popleft()


class RedisFlow(FlowResource):
    """A flow whose nodes run on `penguiflow worker` processes; same API as a local flow.

    Its middlewares and state store are those of the process that built it: a worker builds
    the flow from the same code and delivers the events of the nodes it runs to its own copy.
    `stop()` keeps undelivered messages in Redis for a later `run()`; `aclose()` (or leaving
    `async with`) also closes the state store if it was given as a URL."""

    def __init__(
        self,
        runtime: RedisRuntime,
        definition: FlowDefinition,
        *,
        middlewares: Sequence[Middleware] | None = None,
        state_store: StateStore | str | None = None,
    ) -> None:
        self._runtime = runtime
        self._definition = definition
        self._middlewares: list[Middleware] = self._own_middlewares(middlewares)
        self._state_store: StateStore | None = self._own("state_store", state_store)
        self._lifecycle = FlowLifecycle(self, "client")
        self._namespace = runtime.namespace_for(definition)
        self._codec = runtime.codec_for(definition, None)
        self._client_id = uuid.uuid4().hex
        self._connections: RedisConnections | None = None
        #: every shard of the flow, in shard order (known once Redis was reached)
        self._shards: tuple[ClientShard, ...] = ()
        #: reaching Redis and resolving the shards, shared by every caller meanwhile
        self._connecting: asyncio.Future[tuple[ClientShard, ...]] | None = None
        #: why the flow cannot go on (a shard count that does not match the flow's)
        self._failure: Exception | None = None
        #: set while the result reader cannot reach Redis: a fetch then fails at once
        self._outage: RedisRuntimeUnavailable | None = None
        #: how many results of each trace the caller fetched: the same message emitted after
        #: one is a new request, not the retry of an emit that may have been lost
        self._fetched: OrderedDict[str, int] = OrderedDict()
        self._reader: asyncio.Task[None] | None = None
        self._embedded_stop: asyncio.Event | None = None
        self._embedded: list[asyncio.Task[None]] = []
        self._results = _Inbox()
        self._trace_inboxes: OrderedDict[str, _Inbox] = OrderedDict()
        self._open_traces: set[str] = set()
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._seen_chunks: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._running = False
        self._stopped = False

    def __repr__(self) -> str:
        return (
            f"RedisFlow([{', '.join(self._definition.nodes)}], namespace={self._namespace!r},"
            f" running={self._running})"
        )

    @property
    def definition(self) -> FlowDefinition:
        return self._definition

    @property
    def running(self) -> bool:
        return self._running

    @property
    def middlewares(self) -> list[Middleware]:
        """The middlewares the flow was given or added (a copy; without the sinks hook
        plugins attach to the client): workers deliver their events to these."""
        return self._lifecycle.own_middlewares(self._middlewares)

    @property
    def state_store(self) -> StateStore | None:
        return self._state_store

    def add_middleware(self, middleware: Middleware) -> None:
        """Add a middleware; embedded workers started later by `run()` deliver to it too."""
        self._middlewares.extend(self._own_middlewares([middleware]))

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        """The events the workers recorded for `trace_id` in the flow's state store."""
        if self._state_store is None:
            raise UsageError(
                "RedisFlow was created without a state_store (pass create(..., "
                "state_store='redis://...') in the code both the client and the workers run)"
            )
        return await self._state_store.load_history(trace_id)

    # -- shard 0, what tools and tests that knew one shard look at ----------------------------

    @property
    def _reply(self) -> str:
        """This client's reply stream in shard 0 (the only one with one plain server)."""
        return self._runtime.keys_for(self._definition).reply_stream(self._client_id)

    @property
    def _client(self) -> Any:
        """The client of shard 0's server (None before `run()`)."""
        return None if self._connections is None else self._connections.for_shard(0)

    @property
    def _emits(self) -> EmitBatcher | None:
        return self._shards[0].emits if self._shards else None

    @property
    def _gate(self) -> BacklogGate | None:
        return self._shards[0].gate if self._shards else None

    @property
    def namespace(self) -> str:
        """The Redis key prefix of this flow (`<prefix>:<flow name or signature>`)."""
        return self._namespace

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self, *, registry: ModelRegistry | None = None) -> None:
        """Connect (lazily) and start reading results; start embedded workers if configured."""
        if self._running:
            raise UsageError("RedisFlow already running")
        self._check_open()
        loop = asyncio.get_running_loop()
        # Hooks first: in strict mode a failing plugin stops run() with nothing started.
        self._lifecycle.start(self._middlewares)
        self._codec = self._runtime.codec_for(self._definition, registry)
        self._connections = self._runtime.open_connections(decode_responses=True)
        self._shards = ()
        self._connecting = None
        self._failure = None
        self._reader = loop.create_task(self._read_all_results(), name="penguiflow-redis:results")
        self._running = True
        self._stopped = False
        count = self._runtime.embedded_workers
        if count:
            self._embedded_stop = asyncio.Event()
            target = FlowTarget(self._definition, registry, source="embedded", flow=self)
            self._embedded = [
                loop.create_task(self._serve_embedded(target), name="penguiflow-redis:worker")
                for _ in range(count)
            ]

    async def _serve_embedded(self, target: FlowTarget) -> None:
        assert self._embedded_stop is not None
        await self._runtime.serve_worker(target, stop=self._embedded_stop)

    async def stop(self) -> None:
        """Stop reading results and close the connection; queued messages stay in Redis."""
        if not self._running:
            return
        self._running = False
        self._stopped = True
        if self._embedded_stop is not None:
            self._embedded_stop.set()
            await asyncio.gather(*self._embedded, return_exceptions=True)
            self._embedded = []
        for shard in self._shards:
            await shard.emits.aclose()  # emits handed over still go out (or fail) first
        if self._reader is not None:
            await self._stop_reader(self._reader)
            self._reader = None
        connecting = self._connecting
        if connecting is not None and not connecting.done():
            connecting.cancel()  # still trying to reach Redis: nothing to clean up there
            await asyncio.gather(connecting, return_exceptions=True)
        for shard in self._shards:
            try:
                await shard.client.delete(shard.reply)
            except connection_errors():
                pass
        assert self._connections is not None
        await self._connections.aclose()
        self._lifecycle.stop(self._middlewares)

    async def _stop_reader(self, reader: asyncio.Task[None]) -> None:
        # Cancelling a task blocked in XREAD can leave it stuck inside redis-py's read, so the
        # readers are woken by a stop entry in their own streams and leave between reads.
        if not self._shards:
            reader.cancel()  # never connected: the reader is still connecting, not reading
        else:
            try:
                for shard in self._shards:
                    await shard.client.xadd(shard.reply, {_STOP_FIELD: "1"})
            except connection_errors():
                reader.cancel()  # Redis is away: the readers are backing off, not reading
        done, _ = await asyncio.wait({reader}, timeout=_READER_STOP_S)
        if not done:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def _check_running(self, what: str) -> None:
        if not self._running:
            hint = "after stop(); call run() again" if self._stopped else "before run(); call run()"
            raise UsageError(f"{what}() called {hint} first (the message was not sent)")

    # -- emitting ------------------------------------------------------------------------------

    async def emit(self, msg: Any, to: Any = None, *, trace_id: str | None = None) -> None:
        """Send `msg` to every ingress node (or `to`), waiting while their backlog is full.

        Raises `PayloadTypeError` at once for a payload workers could not rebuild, and
        `RedisRuntimeUnavailable` when Redis cannot be reached. When the connection drops
        after the message left, it may or may not have been enqueued: emitting the same message
        of the same trace again is safe, the runtime recognises it (for `dedup_ttl_s`, and
        until the trace's result arrives) and does not enqueue it twice."""
        self._check_running("emit")
        # Inside a span (a web request's): the message joins that trace on every worker.
        msg = stamp_message(msg)
        if trace_id is not None:
            msg = _stamp_trace(msg, trace_id)
            self._trace_inbox(trace_id)
        trace = getattr(msg, "trace_id", None)
        names = self._ingress_names(to)
        encoded = self._codec.encode(msg)
        sending = False
        try:
            shard = await self._shard_of(trace)
            streams = self._ingress_streams(shard, names)
            # Bytes all the way to the socket: redis-py would encode a str again.
            data = to_json({"i": encoded, "tr": trace, "r": shard.reply})
            gate, emits = shard.gate, shard.emits
            for stream in streams:
                await gate.wait_for_room(stream)
            sending = True
            # One script call per emit, batched with the emits of other tasks that queue up
            # meanwhile (see `EmitBatcher`): each stays atomic, the dedup is unchanged.
            if trace is not None:
                generation = str(self._fetched.get(trace, 0))
                digest = hashlib.sha256(
                    b"\n".join([generation.encode(), data, *(s.encode() for s in streams)])
                )
                ttl_ms = int(self._runtime.dedup_ttl_s * 1000)
                await emits.call(
                    EMIT_SCRIPT,
                    [shard.keys.emitted(trace), *streams],
                    [digest.hexdigest(), ttl_ms, data],
                    streams=streams,
                )
            else:
                await emits.call(UNTRACED_EMIT_SCRIPT, streams, [data], streams=streams)
        except connection_errors() as exc:
            if not sending or _never_connected(exc):
                consequence = f"the message of trace {trace} was not sent"
            elif trace is not None:
                consequence = (
                    f"the message of trace {trace} may or may not have been enqueued (the "
                    "connection dropped before Redis answered); emitting it again is safe: the "
                    "same message of the same trace is not enqueued twice"
                )
            else:
                consequence = (
                    "the message may or may not have been enqueued (the connection dropped "
                    "before Redis answered), and untraced messages cannot be recognised when "
                    "sent again: give messages a trace id to make retries safe"
                )
            raise self._unavailable(exc, consequence) from exc
        if trace is not None:
            self._open_traces.add(trace)

    def emit_nowait(self, msg: Any, to: Any = None, *, trace_id: str | None = None) -> None:
        raise UsageError(
            "emit_nowait() is not available on the redis runtime (sending is network I/O); "
            "use await flow.emit(...)"
        )

    async def _connected(self) -> tuple[ClientShard, ...]:
        """The shards, once Redis was reached and the shard count resolved and checked
        (raises connection errors while it cannot be reached, `ShardCountMismatch`)."""
        if self._shards:
            return self._shards
        if self._failure is not None:
            raise self._failure
        connecting = self._connecting
        if connecting is None or (connecting.done() and connecting.exception() is not None):
            # One attempt at a time, awaited by every caller: they all go on together (emits
            # arriving together still share a round trip), and a failed one is tried again.
            connecting = self._connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(connecting)

    async def _connect(self) -> tuple[ClientShard, ...]:
        connections = self._connections
        assert connections is not None
        keys = await self._runtime.connect(self._definition, connections)
        max_backlog = self._runtime.settings.max_backlog
        self._shards = client_shards(keys, connections, self._client_id, max_backlog)
        return self._shards

    async def _shard_of(self, trace: str | None) -> ClientShard:
        shards = self._shards or await self._connected()
        return shards[shard_of(trace, len(shards))]

    def _ingress_names(self, to: Any) -> list[str] | None:
        """The ingress nodes `to` names (None: every ingress node); raises for another."""
        if to is None:
            return None
        ingress = self._definition.ingress
        targets = (to,) if isinstance(to, Node | str) else tuple(to)
        names = []
        for target in targets:
            name = str(target.name) if isinstance(target, Node) else str(target)
            if name not in ingress:
                raise UnknownNameError(
                    f"Unknown target {name} for OpenSea (ingress nodes: "
                    f"{', '.join(ingress) or 'none'})"
                )
            names.append(name)
        return names

    def _ingress_streams(self, shard: ClientShard, names: list[str] | None) -> list[str]:
        if names is None:
            if shard.all_ingress is None:
                ingress = self._definition.ingress
                shard.all_ingress = [shard.keys.node_stream(name) for name in ingress]
            return shard.all_ingress
        return [shard.keys.node_stream(name) for name in names]

    def _unavailable(self, exc: BaseException, consequence: str) -> RedisRuntimeUnavailable:
        return RedisRuntimeUnavailable(
            f"Redis at {redact_url(self._runtime.url)} is unreachable "
            f"({describe_exception(exc)}); {consequence}. "
            "Start Redis "
            "or fix the URL, then try again: the flow reconnects on its own"
        )

    # -- results -------------------------------------------------------------------------------

    async def fetch(self, from_: Any = None, *, trace_id: str | None = None) -> Any:
        """The next result (or, with `trace_id`, the next result of that trace).

        Waits for it; raises `RedisRuntimeUnavailable` if Redis goes away while waiting, or at
        once while it is known to be away (results are kept in Redis: fetch again once it is
        back)."""
        if from_ is not None:
            raise UsageError(
                "fetch(from_=...) is not supported on the redis runtime; results all arrive "
                "from Rookery, use fetch(trace_id=...) to pick one trace"
            )
        self._check_running("fetch")
        if self._failure is not None:
            raise self._failure
        if self._outage is not None:
            inbox_now = self._results if trace_id is None else self._trace_inboxes.get(trace_id)
            if inbox_now is None or not inbox_now.items:
                await self._check_reachable()
        if trace_id is not None:
            if trace_id in self._cancelled:
                told = self._trace_cancelled(trace_id)
                if isinstance(told, FlowError):
                    return told
                raise told
            inbox = self._trace_inbox(trace_id)
        else:
            inbox = self._results
        item = await inbox.get()
        traced = getattr(item, "trace_id", None)
        if traced is not None and not isinstance(getattr(item, "payload", None), StreamChunk):
            self._fetched[traced] = self._fetched.pop(traced, 0) + 1
            if len(self._fetched) > _SEEN_CHUNKS:
                self._fetched.popitem(last=False)
        return item

    def _trace_inbox(self, trace_id: str) -> _Inbox:
        """The inbox of `trace_id`'s results, made on first use (taking the results of that
        trace that reached the shared inbox meanwhile, after an idle one was forgotten)."""
        inbox = self._trace_inboxes.get(trace_id)
        if inbox is not None:
            self._trace_inboxes.move_to_end(trace_id)
            return inbox
        inbox = _Inbox()
        for item in self._results.take(lambda item: getattr(item, "trace_id", None) == trace_id):
            inbox.put(item)
        self._trace_inboxes[trace_id] = inbox
        if len(self._trace_inboxes) > _MAX_IDLE_TRACE_INBOXES:
            self._forget_idle_inboxes()
        return inbox

    def _forget_idle_inboxes(self) -> None:
        """Forget the oldest idle trace inboxes beyond `_MAX_IDLE_TRACE_INBOXES`; inboxes that
        hold results or waiters are kept whatever their age."""
        excess = len(self._trace_inboxes) - _MAX_IDLE_TRACE_INBOXES
        for trace_id in list(self._trace_inboxes):
            if excess <= 0:
                break
            if self._trace_inboxes[trace_id].idle:
                del self._trace_inboxes[trace_id]
                excess -= 1

    async def _check_reachable(self) -> None:
        """During an outage the reader is backing off: ask Redis directly, and raise at once
        while it is still away (waiting would last as long as the outage)."""
        outage = self._outage
        if outage is None:
            return
        assert self._connections is not None
        try:
            for client in self._connections.clients:
                await client.ping()
        except connection_errors():
            raise outage from None
        self._outage = None

    async def fetch_any(self, from_: Any = None, *, trace_id: str | None = None) -> Any:
        return await self.fetch(from_, trace_id=trace_id)

    async def _read_all_results(self) -> None:
        """Reach Redis (retrying while it is away), then read every shard's reply stream."""
        delay = 0.1
        while True:
            try:
                shards = await self._connected()
                break
            except connection_errors() as exc:
                self._report_outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception as exc:  # the shard count does not match: nothing can go on
                logger.error("%s", describe_exception(exc))
                self._failure = exc
                self._results.fail(exc)
                for inbox in self._trace_inboxes.values():
                    inbox.fail(exc)
                return
        await asyncio.gather(*(self._read_results(shard) for shard in shards))

    def _report_outage(self, exc: BaseException) -> None:
        if self._outage is not None:
            return
        logger.warning(
            "redis at %s is unreachable (%s)",
            redact_url(self._runtime.url),
            describe_exception(exc),
        )
        error = self._unavailable(exc, "results will arrive once it is back")
        self._outage = error
        self._results.fail(error)
        for inbox in self._trace_inboxes.values():
            inbox.fail(error)

    async def _read_results(self, shard: ClientShard) -> None:
        last_id = "0-0"
        delay = 0.1
        outage = False
        #: entries read but not yet deleted (see `_next_results`)
        read: list[str] = []
        deleted_at = time.monotonic()
        while True:
            try:
                now = time.monotonic()
                delete = len(read) >= _DELETE_EVERY or (
                    bool(read) and now - deleted_at >= _DELETE_AFTER_S
                )
                response = await self._next_results(shard, last_id, read if delete else [])
                if delete:
                    read, deleted_at = [], now
                if outage:
                    logger.info("redis at %s is reachable again", redact_url(self._runtime.url))
                outage = False
                self._outage = None
                delay = 0.1
            except connection_errors() as exc:
                if not outage:
                    self._report_outage(exc)
                outage = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            stopping = False
            arrived: list[tuple[_Inbox, Any]] = []
            for _, entries in response or ():
                for entry_id, fields in entries:
                    read.append(entry_id)
                    last_id = entry_id
                    if _STOP_FIELD in fields:
                        stopping = True
                    elif (delivery := self._deliver(fields)) is not None:
                        arrived.append(delivery)
            for inbox, item in arrived:
                inbox.put(item)
            if stopping:
                return  # stop() deletes the whole stream

    async def _next_results(self, shard: ClientShard, last_id: str, read: list[str]) -> Any:
        """The next entries after `last_id` (waiting for some), deleting the entries `read`
        before in the same round trip: a round trip costs the client more than the entries.
        Entries read and not yet deleted are never read again (reads start after `last_id`);
        they only wait in Redis a little longer (the stream goes when the flow stops)."""
        streams = {shard.reply: last_id}
        if not read:
            return await shard.client.xread(streams, count=_READ_COUNT, block=_READ_BLOCK_MS)
        async with shard.client.pipeline(transaction=False) as pipe:
            pipe.xdel(shard.reply, *read)
            pipe.xread(streams, count=_READ_COUNT, block=_READ_BLOCK_MS)
            _, response = await pipe.execute()
        return response

    def _deliver(self, fields: dict[str, str]) -> tuple[_Inbox, Any] | None:
        """Where a result goes (the inbox and the item), or None when it is dropped."""
        try:
            envelope = from_json(fields["e"])
            item = self._codec.decode(envelope["i"])
        except Exception as exc:
            logger.error("dropped a result this client cannot decode: %s", describe_exception(exc))
            return None
        trace: str | None = envelope.get("tr")
        if trace is not None and trace in self._cancelled:
            return None
        if envelope.get("k") == "chunk" and isinstance(item, Message):
            chunk = item.payload
            if isinstance(chunk, StreamChunk):
                key = (chunk.stream_id, chunk.seq)
                if key in self._seen_chunks:
                    return None
                self._seen_chunks[key] = None
                if len(self._seen_chunks) > _SEEN_CHUNKS:
                    self._seen_chunks.popitem(last=False)
        elif trace is not None and (
            not isinstance(item, Message) or isinstance(item.payload, FinalAnswer)
        ):
            self._open_traces.discard(trace)
        inbox = self._trace_inboxes.get(trace) if trace is not None else None
        return inbox or self._results, item

    # -- cancellation --------------------------------------------------------------------------

    async def cancel(self, trace_id: str) -> bool:
        """Cancel `trace_id` on every worker: running invocations are cancelled, queued
        messages are dropped, results not yet fetched are discarded.

        Returns False if this client does not know the trace as in flight."""
        self._check_running("cancel")
        try:
            shard = await self._shard_of(trace_id)
            keys = shard.keys
            async with shard.client.pipeline(transaction=True) as pipe:
                ttl = max(int(self._runtime.settings.cancel_ttl_s), 1)
                pipe.set(keys.cancelled(trace_id), "1", ex=ttl)
                pipe.delete(keys.emitted(trace_id))  # the trace may be emitted afresh
                if self._runtime.address.kind == "cluster":
                    # A sharded channel: routed by its slot, like the shard's keys.
                    pipe.spublish(keys.cancel_channel, trace_id)
                else:
                    pipe.publish(keys.cancel_channel, trace_id)
                await pipe.execute()
        except connection_errors() as exc:
            raise self._unavailable(exc, f"trace {trace_id} was not cancelled") from exc
        known = trace_id in self._open_traces
        self._open_traces.discard(trace_id)
        self._cancelled[trace_id] = None
        if len(self._cancelled) > _SEEN_CHUNKS:
            self._cancelled.popitem(last=False)
        self._results.drop(lambda item: getattr(item, "trace_id", None) != trace_id)
        inbox = self._trace_inboxes.pop(trace_id, None)
        if inbox is not None:
            told = self._trace_cancelled(trace_id)
            if isinstance(told, FlowError):
                inbox.put(told)
            else:
                inbox.fail(told)
        return known

    def _trace_cancelled(self, trace_id: str) -> FlowError | TraceCancelled:
        """What a `fetch(trace_id=...)` of a cancelled trace gets: a `FlowError`
        (`TRACE_CANCELLED`) when errors go to Rookery, else `TraceCancelled` is raised."""
        if self._definition.emit_errors_to_rookery:
            return FlowError(
                trace_id=trace_id,
                node_name=None,
                code=FlowErrorCode.TRACE_CANCELLED,
                message=f"trace {trace_id} was cancelled while its result was awaited",
            )
        return TraceCancelled(trace_id)


def _stamp_trace(msg: Any, trace_id: str) -> Any:
    if isinstance(msg, Message):
        return msg if msg.trace_id == trace_id else msg.model_copy(update={"trace_id": trace_id})
    raise InvalidTypeError(
        f"emit(trace_id=...) requires a Message, got {type(msg).__name__}; wrap the value in "
        "Message(payload=..., headers=Headers(...))"
    )


def _never_connected(exc: BaseException) -> bool:
    """Whether the connection was refused before anything was sent (redis-py says
    "Error 111 connecting to host:port"), as opposed to dropped with the command in flight."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "connecting to" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
