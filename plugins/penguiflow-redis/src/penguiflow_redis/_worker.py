"""A worker: consumes node input streams through the consumer group and runs the nodes.

What happens to a message in a node is the kernel's node engine (`penguiflow.runtime.
NodeEngine`); this module is the redis runtime's part. One reader (`_reader.EntryReader`) takes
new entries of every served node stream in one blocking XREADGROUP, up to the free handler
slots (`concurrency` per node), and hands each to a handler task. Every `claim_idle_s / 2` the
worker also takes over entries that another consumer has held for longer than `claim_idle_s`:
the entries of a worker that died. A live worker renews its entries while it works on them, so
only dead workers' entries are taken. A handler runs the entry's node and, in the same task,
the nodes its outputs go to when this worker serves them (operator chaining, `_chain`); the
outputs that leave the worker are acked together with the entry (`CommitBatcher`).

Shards: a flow split into shards (several servers, a cluster, or the `shards` option) has one
reader per shard, and each entry is handled with its shard's keys and client alone
(`_worker_shard.WorkerShard`); commits, claims, the heartbeat and the statistics are per shard,
and cancellations are heard with one subscription per server (`_cancels`). With one plain
server and one shard, key names and commands are those of a runtime without shards.

Structure: the readers (which also take over dead workers' entries, between two reads), the
cancel listener and the claim renewal run in one anyio task group.
Each entry's handler is a plain asyncio task the pool owns (an anyio task per message measured
about 50 function calls a hop more; see benchmarks/README.md): on shutdown the reader stops
first, work in progress gets `shutdown_grace_s` to finish, the rest is cancelled and awaited,
so nothing outlives `serve()`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import from_json, to_json

from penguiflow.current import using_context
from penguiflow.errors import describe_exception
from penguiflow.middlewares import Middleware
from penguiflow.registry import ModelRegistry
from penguiflow.runtime import (
    EventPublisher,
    FlowDefinition,
    FlowLifecycle,
    Lane,
    NodeEngine,
    fan_in_size,
)
from penguiflow.types import Message

from ._backlog import BacklogGate
from ._cancels import listen_for_cancels
from ._chain import ChainPlan, ChainRun, check_boundaries, follow
from ._codec import PayloadCodec, type_tag
from ._commits import CommitBatcher
from ._connect import RedisAddress, RedisConnections
from ._context import WorkerContext
from ._dead_letters import give_up, undecodable
from ._endpoints import Endpoint, locate
from ._outbox import RedisOutbox
from ._reader import EntryReader, HandlerSlots
from ._stats import report_quietly
from ._streams import (
    GROUP,
    JOIN_SCRIPT,
    FlowKeys,
    RedisRuntimeUnavailable,
    ensure_group,
    lost_group,
)
from ._worker_shard import (
    WorkerShard,
    claim_stale,
    dead_after_ms,
    forget_gone_consumers,
)

if TYPE_CHECKING:
    from .runtime import RedisRuntime

__all__ = ["WorkerPool", "WorkerSettings", "connection_errors"]

logger = logging.getLogger("penguiflow_redis.worker")

_JOIN_COMPLETE = 1
_JOIN_BUSY = 4


def connection_errors() -> tuple[type[BaseException], ...]:
    """What means "Redis cannot serve this now, try again": a lost or refused connection, a
    timeout, and a cluster reconfiguring (CLUSTERDOWN while a master is away, TRYAGAIN)."""
    from redis.exceptions import ClusterDownError, TryAgainError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (
        RedisConnectionError,
        RedisTimeoutError,
        ClusterDownError,
        TryAgainError,
        ConnectionError,
        OSError,
    )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 8
    claim_idle_s: float = 30.0
    block_s: float = 1.0
    max_backlog: int = 1000
    cancel_ttl_s: float = 3600.0
    join_ttl_s: float = 86400.0
    reply_ttl_s: float = 86400.0
    max_deliveries: int = 5
    shutdown_grace_s: float = 10.0
    connect_timeout_s: float = 30.0
    forget_consumers_after_s: float = 600.0
    #: how often the streams' lengths, pending entries and dead letters are published as
    #: events (only while event sinks listen: see `_stats`)
    stats_interval_s: float = 5.0
    #: run an output through the next node in-process when this worker serves it (`_chain`)
    chain: bool = True
    #: nodes whose outputs always go through Redis (durability boundaries)
    commit_after: tuple[str, ...] = ()


class WorkerPool:
    """Serves some nodes of one flow in this process until stopped.

    `flow` is the flow object the user's code built in this process (its middlewares and
    state store receive the events of the nodes run here); the lifecycle and observability
    hooks are called with it and `role="worker"`."""

    def __init__(
        self,
        *,
        runtime: RedisRuntime,
        definition: FlowDefinition,
        registry: ModelRegistry | None,
        codec: PayloadCodec,
        settings: WorkerSettings,
        nodes: Sequence[str] = (),
        flow: Any = None,
        middlewares: Sequence[Middleware] = (),
        state_store: Any = None,
    ) -> None:
        self.runtime = runtime
        self.address: RedisAddress = runtime.address
        self.namespace = runtime.namespace_for(definition)
        self.definition = definition
        self.registry = registry
        self.codec = codec
        self.settings = settings
        self.nodes = tuple(nodes) or tuple(definition.nodes)
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.flow = flow
        self.middlewares: list[Middleware] = list(middlewares)
        self.events = EventPublisher(self.middlewares, state_store)
        self._connections: RedisConnections | None = None
        #: every shard of the flow, in shard order (known once connected)
        self.shards: tuple[WorkerShard, ...] = ()
        #: join_k nodes served here, with their k
        self._joins: dict[str, int] = {
            name: size
            for name in self.nodes
            if (size := fan_in_size(definition.node(name))) is not None
        }
        #: every join_k node of the flow (a dead trace's buckets may be on any of them)
        self.all_joins = [
            name for name, node in definition.nodes.items() if fan_in_size(node) is not None
        ]
        check_boundaries(settings.commit_after, definition.nodes)
        #: which outputs this worker runs in-process instead of writing them to Redis
        self.chains = ChainPlan(
            served=self.nodes,
            joins=self._joins,
            enabled=settings.chain,
            commit_after=settings.commit_after,
        )
        self._crossable_tags = frozenset(codec.tags)
        outbox = RedisOutbox(self)
        #: one engine per node and process (so one circuit breaker, as locally per flow)
        self.engines: dict[str, NodeEngine] = {
            name: NodeEngine(
                definition.node(name),
                outbox,
                registry=registry,
                emit_errors_to_rookery=definition.emit_errors_to_rookery,
            )
            for name in self.nodes
        }
        self._stopping = False
        #: handler tasks of the entries being processed (owned: awaited or cancelled at stop)
        self._handlers: set[asyncio.Task[None]] = set()
        #: entries being processed, by shard and stream
        self._in_progress: dict[tuple[int, str], set[str]] = {}
        #: lanes of the messages being processed, by trace
        self._lanes: dict[str, set[Lane]] = {}
        self.cancelled: dict[str, float] = {}
        self._outage_logged = False

    # -- what node code sends ------------------------------------------------------------------

    def envelope(self, item: Any, trace_id: str | None, reply: str, *, chunk: bool = False) -> str:
        data: dict[str, Any] = {"i": self.codec.encode(item), "tr": trace_id, "r": reply}
        if chunk:
            data["k"] = "chunk"
        return to_json(data).decode()

    async def send_now(self, shard: WorkerShard, outputs: Sequence[tuple[str, str]]) -> None:
        """Write `outputs` (streams of `shard`) at once, outside any commit (stream chunks)."""
        if not outputs:
            return
        async with shard.client.pipeline(transaction=False) as pipe:
            self.queue_outputs(shard, pipe, outputs)
            await pipe.execute()

    def queue_outputs(
        self, shard: WorkerShard, pipe: Any, outputs: Sequence[tuple[str, str]]
    ) -> None:
        """Add `outputs` to `pipe`; a client's reply stream gets its time to live renewed."""
        for stream, data in outputs:
            pipe.xadd(stream, {"e": data})
            if shard.keys.is_reply_stream(stream):
                pipe.pexpire(stream, self._reply_ttl_ms)

    @property
    def _reply_ttl_ms(self) -> int:
        return int(self.settings.reply_ttl_s * 1000)

    def check_crossable(self, item: Any) -> None:
        """Raise `PayloadTypeError` for an item of a model type no other process could rebuild.

        A chained output is handed over as the object it is, never encoded; checking its type
        (cheap) keeps an unregistered payload an error of the node that returns it, wherever
        the next node runs, instead of one that appears only when the flow is split across
        workers. (Whether the value serialises is only learnt where it crosses Redis.)"""
        payload = item.payload if isinstance(item, Message) else item
        values = payload if isinstance(payload, list) else (payload,)
        known = self._crossable_tags
        for value in values:
            if isinstance(value, BaseModel) and type_tag(type(value)) not in known:
                self.codec.encode(item)  # raises, naming the type and how to declare it

    def inflight(self, trace_id: str) -> int:
        """Messages of `trace_id` whose node code runs in this process right now."""
        return sum(1 for lane in self._lanes.get(trace_id, ()) if lane.invoking == trace_id)

    # -- lifecycle -----------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event, on_ready: Callable[[str], None] | None) -> None:
        import anyio

        # Hooks first: in strict mode a failing plugin stops the worker with nothing started.
        lifecycle = FlowLifecycle(self.flow, "worker")
        lifecycle.start(self.middlewares)
        self._connections = self.runtime.open_connections(decode_responses=True)
        try:
            await self._until_reachable(stop, self._connect, within=self.settings.connect_timeout_s)
            if stop.is_set():
                return
            readers = [self._reader(shard) for shard in self.shards]
            try:
                async with anyio.create_task_group() as loops:
                    for reader in readers:
                        loops.start_soon(reader.run)
                    loops.start_soon(self._listen_for_cancels)
                    loops.start_soon(self._renew_claims)
                    loops.start_soon(self._report_streams)
                    if on_ready is not None:
                        count = len(self.shards)
                        on_ready(
                            f"nodes {', '.join(self.nodes)} of {self.namespace} on "
                            f"{self.address.shown}"
                            + (f" ({count} shards)" if count > 1 else "")
                            + f" as {self.consumer}"
                        )
                    await stop.wait()
                    self._stopping = True
                    loops.cancel_scope.cancel()
            finally:
                await self._finish_handlers()
        finally:
            self._stopping = True
            for shard in self.shards:
                await shard.commits.aclose()
            for shard in self.shards:
                try:
                    await shard.client.delete(shard.keys.alive(self.consumer))
                except connection_errors():
                    pass  # it expires on its own
            await self._connections.aclose()
            lifecycle.stop(self.middlewares)

    async def _connect(self) -> None:
        """Resolve and check the shard count, set up each shard, create the groups."""
        connections = self._connections
        assert connections is not None
        if not self.shards:
            keys = await self.runtime.connect(self.definition, connections)
            # `concurrency` bounds a node's messages in progress in this worker: the shards'
            # readers share it (at least one each, so that every shard is read).
            per_shard = max(1, -(-self.settings.concurrency // len(keys)))
            self.shards = tuple(
                self._shard(index, shard_keys, connections.for_shard(index), per_shard)
                for index, shard_keys in enumerate(keys)
            )
        for shard in self.shards:
            for name in self.nodes:
                await ensure_group(shard.client, shard.keys.node_stream(name))

    def _shard(self, index: int, keys: FlowKeys, client: Any, concurrency: int) -> WorkerShard:
        gate = BacklogGate(client, self.settings.max_backlog)
        reply_ttl_ms = self._reply_ttl_ms

        def expiry(stream: str) -> int:
            return reply_ttl_ms if keys.is_reply_stream(stream) else 0

        return WorkerShard(
            index=index,
            keys=keys,
            client=client,
            commits=CommitBatcher(client, observe=gate.observe, expiry_ms=expiry),
            gate=gate,
            join_script=client.register_script(JOIN_SCRIPT),
            slots=HandlerSlots(self.nodes, concurrency),
        )

    def _reader(self, shard: WorkerShard) -> EntryReader:
        connections = self._connections
        assert connections is not None
        streams = {name: shard.keys.node_stream(name) for name in self.nodes}
        probe = next(iter(streams.values()))
        slots = shard.slots

        async def where(refresh: bool) -> Endpoint:
            return await locate(connections, shard.index, probe, refresh=refresh)

        return EntryReader(
            locate=where,
            control=shard.client,
            consumer=self.consumer,
            streams=streams,
            slots=slots,
            block_ms=int(self.settings.block_s * 1000),
            start=lambda name, stream, entry_id, fields: self._start(
                slots, name, self._handle(shard, name, stream, entry_id, fields)
            ),
            outage=self._log_outage,
            reachable=self._reachable,
            errors=connection_errors(),
            housekeeping=lambda: self._take_over_dead_workers_entries(shard),
            housekeeping_every_s=max(self.settings.claim_idle_s / 2, 0.05),
        )

    async def _finish_handlers(self) -> None:
        """Work in progress finishes (up to `shutdown_grace_s`), the rest is cancelled and
        awaited; entries not finished stay pending for other workers."""
        import anyio

        handlers = set(self._handlers)
        if not handlers:
            return
        with anyio.CancelScope(shield=True):
            _, late = await asyncio.wait(handlers, timeout=self.settings.shutdown_grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _until_reachable(
        self, stop: asyncio.Event, action: Callable[[], Any], *, within: float
    ) -> None:
        """Run `action` once Redis answers; give up after `within` seconds (a worker pointed
        at nothing must not idle for ever: the CLI exits non-zero)."""
        deadline = time.monotonic() + within
        delay = 0.1
        while not stop.is_set():
            try:
                await action()
                self._outage_logged = False
                return
            except connection_errors() as exc:
                if time.monotonic() >= deadline:
                    raise RedisRuntimeUnavailable(
                        f"no Redis answered at {_where(self.address)} within {within:g}s "
                        f"({describe_exception(exc)}); start Redis or fix the URL, or wait "
                        "longer with --connect-timeout (runtime option connect_timeout_s)"
                    ) from exc
                self._log_outage(exc)
                await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
                delay = min(delay * 2, 2.0)

    def _log_outage(self, exc: BaseException) -> None:
        if not self._outage_logged:
            logger.warning(
                "redis at %s is unreachable (%s); worker %s retries until it is back",
                self.address.shown,
                exc,
                self.consumer,
            )
            self._outage_logged = True

    # -- consuming -----------------------------------------------------------------------------

    def _reachable(self) -> None:
        self._outage_logged = False

    def _start(self, slots: HandlerSlots, name: str, job: Awaitable[None]) -> None:
        """Run `job` in a handler task that holds one of `name`'s slots (already taken)."""
        task = asyncio.create_task(_holding_slot(slots, name, job))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _take_over_dead_workers_entries(self, shard: WorkerShard) -> None:
        """Take over what dead workers held in `shard` (up to the free slots of each node)
        and, now and then, forget consumers gone for good. The shard's reader calls this every
        `claim_idle_s / 2`, between two reads."""
        settings = self.settings
        slots = shard.slots
        # Forgetting gone consumers is housekeeping: a slower cadence (they are only removed
        # after `forget_consumers_after_s` anyway) keeps an idle worker's commands few.
        forget = time.monotonic() >= shard.next_forget
        if forget:
            every = max(settings.claim_idle_s / 2, settings.forget_consumers_after_s / 2)
            shard.next_forget = time.monotonic() + every
        for name in self.nodes:
            stream = shard.keys.node_stream(name)
            free = slots.free(name)
            slots.take(name, free)
            started = 0
            try:
                if free:
                    entries, exhausted = await claim_stale(
                        shard,
                        consumer=self.consumer,
                        settings=settings,
                        node=name,
                        stream=stream,
                        count=free,
                        holding=self._in_progress.setdefault((shard.index, stream), set()),
                    )
                    for entry_id, fields in entries:
                        if entry_id in exhausted:
                            job = give_up(
                                self, shard, name, stream, entry_id, fields, exhausted[entry_id]
                            )
                        else:
                            job = self._handle(shard, name, stream, entry_id, fields)
                        self._start(slots, name, job)
                        started += 1
                if forget:
                    await forget_gone_consumers(
                        shard, consumer=self.consumer, settings=settings, stream=stream
                    )
            except connection_errors() as exc:
                self._log_outage(exc)
            except Exception as exc:
                if not lost_group(exc):
                    raise
                # Redis lost the group: the reader makes it again; the next round claims.
            finally:
                slots.give_back(name, free - started)

    async def _renew_claims(self) -> None:
        """Keep this worker's heartbeat in every shard and reset the idle time of the entries
        in progress, so no other worker takes them over or counts this worker as dead."""
        every = max(self.settings.claim_idle_s / 3, 0.02)
        dead_after = dead_after_ms(self.settings)
        while True:
            for shard in self.shards:
                try:
                    await shard.client.set(shard.keys.alive(self.consumer), "1", px=dead_after)
                except connection_errors() as exc:
                    self._log_outage(exc)
            for (index, stream), ids in list(self._in_progress.items()):
                if not ids:
                    continue
                try:
                    await self.shards[index].client.xclaim(
                        stream, GROUP, self.consumer, 0, list(ids), justid=True
                    )
                except connection_errors() as exc:
                    self._log_outage(exc)
                except Exception as exc:
                    # Regression: Redis lost the stream's group (a failover to a replica
                    # that had not received it) and this NOGROUP stopped the worker. The
                    # entries went with the group; their commits will find nothing to ack.
                    if not lost_group(exc):
                        raise
            await asyncio.sleep(every)

    async def _report_streams(self) -> None:
        """Publish the served streams' statistics now and then (see `_stats`)."""
        shards = [(shard.client, shard.keys) for shard in self.shards]
        while True:
            await report_quietly(shards, self.nodes)
            await asyncio.sleep(self.settings.stats_interval_s)

    # -- one entry -----------------------------------------------------------------------------

    async def _handle(
        self, shard: WorkerShard, name: str, stream: str, entry_id: str, fields: dict[str, str]
    ) -> None:
        in_progress = self._in_progress.setdefault((shard.index, stream), set())
        in_progress.add(entry_id)
        try:
            await self._handle_entry(shard, name, stream, entry_id, fields)
        except Exception as exc:
            if lost_group(exc):
                logger.warning(
                    "worker %s dropped entry %s of %s: Redis no longer has that stream's group "
                    "(it lost data: restarted without persistence, or failed over to a replica "
                    "that had not received it); emit the message again if it matters",
                    self.consumer,
                    entry_id,
                    stream,
                )
                return
            # Supervision: the entry stays pending (another worker takes it over after
            # claim_idle_s, up to max_deliveries); this worker goes on with the next one.
            logger.exception(
                "worker %s failed on entry %s of %s; it stays pending for redelivery",
                self.consumer,
                entry_id,
                stream,
            )
        finally:
            in_progress.discard(entry_id)

    async def _handle_entry(
        self, shard: WorkerShard, name: str, stream: str, entry_id: str, fields: dict[str, str]
    ) -> None:
        raw = fields.get("e", "")
        try:
            envelope = from_json(raw)
            item = self.codec.decode(envelope["i"])
            reply = str(envelope["r"])
        except Exception as exc:
            await undecodable(self, shard, name, stream, entry_id, fields, exc)
            return
        trace_id: str | None = envelope.get("tr")
        join_size = self._joins.get(name)
        if join_size is not None and trace_id is not None and trace_id not in self.cancelled:
            await self._join(shard, name, join_size, stream, entry_id, envelope, trace_id, reply)
            return
        run = ChainRun()
        ctx = await self._process(shard, name, item, trace_id, reply, run)
        # A chain stays in the entry's shard (its outputs commit with the entry's ack), even
        # through a node that gives its output another trace id.
        await follow(ctx, run, functools.partial(self._process, shard), self.cancelled)
        # A trace cancelled while its message was processed sends nothing on.
        outputs = [] if trace_id in self.cancelled else run.outputs
        await self._commit_when_reachable(shard, stream, entry_id, trace_id, outputs)

    async def _process(
        self,
        shard: WorkerShard,
        name: str,
        item: Any,
        trace_id: str | None,
        reply: str,
        run: ChainRun,
    ) -> WorkerContext:
        """Run `item` through node `name` (the `run.hops`-th node for this entry); its
        context holds what it sent."""
        engine = self.engines[name]
        run.hops += 1
        chain = self.chains.chains_after(name, run.hops)
        ctx = WorkerContext(self, shard, engine.node, trace_id, reply, chain=chain)
        lane = Lane(asyncio.current_task())
        lanes = self._lanes.setdefault(trace_id or "", set())
        lanes.add(lane)
        try:
            with using_context(ctx):
                await engine.process(item, ctx, lane, trace_id)
        except Exception as exc:
            await engine.fail_internal(item, ctx, trace_id, exc)
        finally:
            lanes.discard(lane)
            if not lanes:
                self._lanes.pop(trace_id or "", None)
        return ctx

    async def _commit_when_reachable(
        self,
        shard: WorkerShard,
        stream: str,
        entry_id: str,
        trace_id: str | None,
        outputs: list[tuple[str, str]],
        cleanup: Sequence[str] = (),
    ) -> None:
        delay = 0.05
        while True:
            try:
                for target, _ in outputs:
                    if target != stream and ":in:" in target:
                        await shard.gate.wait_for_room(target)
                await shard.commits.commit(
                    stream=stream,
                    entry_id=entry_id,
                    cancel_key=shard.keys.cancelled(trace_id),
                    outputs=outputs,
                    group=GROUP,
                    cleanup=cleanup,
                )
                return
            except connection_errors() as exc:
                if self._stopping:
                    return  # left pending: another worker takes it over after claim_idle_s
                self._log_outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- join_k: buckets in Redis, so a trace's messages may reach any worker -------------------

    async def _join(
        self,
        shard: WorkerShard,
        name: str,
        size: int,
        stream: str,
        entry_id: str,
        envelope: dict[str, Any],
        trace_id: str,
        reply: str,
    ) -> None:
        bucket = shard.keys.join_bucket(name, trace_id)
        closing = shard.keys.join_closing(name, trace_id)
        keys = [stream, shard.keys.cancelled(trace_id), bucket, closing]
        args = [GROUP, entry_id, size, to_json(envelope["i"]).decode()]
        args.append(int(self.settings.join_ttl_s * 1000))
        delay = 0.005
        while True:
            try:
                answer = await shard.join_script(keys=keys, args=args)
            except connection_errors() as exc:
                if self._stopping:
                    return  # still pending: taken over after claim_idle_s
                self._log_outage(exc)
                await asyncio.sleep(0.1)
                continue
            status = int(answer[0])
            if status == _JOIN_BUSY:  # the bucket's k-th message is being committed
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
                continue
            if status != _JOIN_COMPLETE:
                return  # held (acked), cancelled, or completed elsewhere
            break
        items = [self.codec.decode(from_json(raw)) for raw in answer[1:]]
        items.append(self.codec.decode(envelope["i"]))
        engine = self.engines[name]
        run = ChainRun()
        run.hops = 1
        chain = self.chains.chains_after(name, run.hops)
        ctx = WorkerContext(self, shard, engine.node, trace_id, reply, chain=chain)
        first = items[0]
        joined: Any = items
        if isinstance(first, Message):
            joined = first.model_copy(update={"payload": [item.payload for item in items]})
        # join_k's own function keeps buckets in process memory; here the bucket is in Redis
        # and the joined value is the node's result, routed by the engine like any other.
        await engine.deliver(items[-1], ctx, joined, trace_id)
        # What follows the join on this worker runs now; a crash redoes the join and the chain
        # from the same bucket (the closing mark keeps it until this commit).
        await follow(ctx, run, functools.partial(self._process, shard), self.cancelled)
        outputs = [] if trace_id in self.cancelled else run.outputs
        await self._commit_when_reachable(
            shard, stream, entry_id, trace_id, outputs, cleanup=(bucket, closing)
        )

    # -- cancellation --------------------------------------------------------------------------

    async def _listen_for_cancels(self) -> None:
        assert self._connections is not None
        await listen_for_cancels(
            self._connections,
            [shard.keys for shard in self.shards],
            on_cancel=self.cancel_locally,
            tick=self._forget_old_cancels,
            outage=self._log_outage,
            errors=connection_errors(),
        )

    def cancel_locally(self, trace_id: str) -> None:
        self.cancelled[trace_id] = time.monotonic() + self.settings.cancel_ttl_s
        for lane in list(self._lanes.get(trace_id, ())):
            lane.interrupt(trace_id)

    def _forget_old_cancels(self) -> None:
        now = time.monotonic()
        for trace_id in [t for t, until in self.cancelled.items() if until < now]:
            del self.cancelled[trace_id]


async def _holding_slot(slots: HandlerSlots, name: str, job: Awaitable[None]) -> None:
    try:
        await job
    finally:
        slots.give_back(name)


def _where(address: RedisAddress) -> str:
    """Where `address` points, without credentials: `host:port` of one server."""
    return _host_of(address.url) if address.kind == "server" else address.shown


def _host_of(url: str) -> str:
    """`host:port` of a Redis URL: where it points, without credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or 'localhost'}:{port or 6379}"
