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

Structure: the reader (which also takes over dead workers' entries, between two reads), the
cancel listener and the claim renewal run in one anyio task group.
Each entry's handler is a plain asyncio task the pool owns (an anyio task per message measured
about 50 function calls a hop more; see benchmarks/README.md): on shutdown the reader stops
first, work in progress gets `shutdown_grace_s` to finish, the rest is cancelled and awaited,
so nothing outlives `serve()`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import from_json, to_json

from penguiflow import observability
from penguiflow.current import using_context
from penguiflow.errors import FlowErrorCode, UsageError, describe_exception
from penguiflow.middlewares import Middleware
from penguiflow.registry import ModelRegistry
from penguiflow.resources import redact_url
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
from ._chain import ChainPlan, ChainRun, check_boundaries, follow
from ._codec import PayloadCodec, type_tag
from ._commits import CommitBatcher
from ._context import WorkerContext
from ._outbox import RedisOutbox
from ._reader import EntryReader, HandlerSlots
from ._stats import dead_letter_event, report_quietly
from ._streams import GROUP, JOIN_SCRIPT, FlowKeys, RedisRuntimeUnavailable, ensure_group

__all__ = ["WorkerPool", "WorkerSettings", "connection_errors"]

logger = logging.getLogger("penguiflow_redis.worker")

_JOIN_COMPLETE = 1
_JOIN_BUSY = 4
_DEAD_LETTERS_KEPT = 10_000


def connection_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


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
        url: str,
        keys: FlowKeys,
        definition: FlowDefinition,
        registry: ModelRegistry | None,
        codec: PayloadCodec,
        settings: WorkerSettings,
        nodes: Sequence[str] = (),
        flow: Any = None,
        middlewares: Sequence[Middleware] = (),
        state_store: Any = None,
    ) -> None:
        self.url = url
        self.keys = keys
        self.definition = definition
        self.registry = registry
        self.codec = codec
        self.settings = settings
        self.nodes = tuple(nodes) or tuple(definition.nodes)
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.flow = flow
        self.middlewares: list[Middleware] = list(middlewares)
        self.events = EventPublisher(self.middlewares, state_store)
        self._client: Any = None
        self._commits: CommitBatcher | None = None
        self._join_script: Any = None
        #: join_k nodes served here, with their k
        self._joins: dict[str, int] = {
            name: size
            for name in self.nodes
            if (size := fan_in_size(definition.node(name))) is not None
        }
        #: every join_k node of the flow (a dead trace's buckets may be on any of them)
        self._all_joins = [
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
        self._gate: BacklogGate | None = None
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
        self._in_progress: dict[str, set[str]] = {}
        #: lanes of the messages being processed, by trace
        self._lanes: dict[str, set[Lane]] = {}
        self.cancelled: dict[str, float] = {}
        self._outage_logged = False
        self._next_forget = 0.0

    # -- what node code sends ------------------------------------------------------------------

    def envelope(self, item: Any, trace_id: str | None, reply: str, *, chunk: bool = False) -> str:
        data: dict[str, Any] = {"i": self.codec.encode(item), "tr": trace_id, "r": reply}
        if chunk:
            data["k"] = "chunk"
        return to_json(data).decode()

    async def send_now(self, outputs: Sequence[tuple[str, str]]) -> None:
        if not outputs:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            self._queue_outputs(pipe, outputs)
            await pipe.execute()

    def _queue_outputs(self, pipe: Any, outputs: Sequence[tuple[str, str]]) -> None:
        """Add `outputs` to `pipe`; a client's reply stream gets its time to live renewed."""
        for stream, data in outputs:
            pipe.xadd(stream, {"e": data})
            if self.keys.is_reply_stream(stream):
                pipe.pexpire(stream, self._reply_ttl_ms)

    @property
    def _reply_ttl_ms(self) -> int:
        return int(self.settings.reply_ttl_s * 1000)

    def _expiry_ms(self, stream: str) -> int:
        return self._reply_ttl_ms if self.keys.is_reply_stream(stream) else 0

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
        import redis.asyncio as redis

        # Hooks first: in strict mode a failing plugin stops the worker with nothing started.
        lifecycle = FlowLifecycle(self.flow, "worker")
        lifecycle.start(self.middlewares)
        self._client = redis.Redis.from_url(self.url, decode_responses=True)
        self._gate = BacklogGate(self._client, self.settings.max_backlog)
        self._commits = CommitBatcher(
            self._client, observe=self._gate.observe, expiry_ms=self._expiry_ms
        )
        self._join_script = self._client.register_script(JOIN_SCRIPT)
        try:
            await self._until_reachable(
                stop, self._create_groups, within=self.settings.connect_timeout_s
            )
            if stop.is_set():
                return
            slots = HandlerSlots(self.nodes, self.settings.concurrency)
            reader = EntryReader(
                url=self.url,
                control=self._client,
                consumer=self.consumer,
                streams={name: self.keys.node_stream(name) for name in self.nodes},
                slots=slots,
                block_ms=int(self.settings.block_s * 1000),
                start=lambda name, stream, entry_id, fields: self._start(
                    slots, name, self._handle(name, stream, entry_id, fields)
                ),
                outage=self._log_outage,
                reachable=self._reachable,
                errors=connection_errors(),
                housekeeping=lambda: self._take_over_dead_workers_entries(slots),
                housekeeping_every_s=max(self.settings.claim_idle_s / 2, 0.05),
            )
            try:
                async with anyio.create_task_group() as loops:
                    loops.start_soon(reader.run)
                    loops.start_soon(self._listen_for_cancels)
                    loops.start_soon(self._renew_claims)
                    loops.start_soon(self._report_streams)
                    if on_ready is not None:
                        on_ready(
                            f"nodes {', '.join(self.nodes)} of {self.keys.namespace} on "
                            f"{redact_url(self.url)} as {self.consumer}"
                        )
                    await stop.wait()
                    self._stopping = True
                    loops.cancel_scope.cancel()
            finally:
                await self._finish_handlers()
        finally:
            self._stopping = True
            if self._commits is not None:
                await self._commits.aclose()
            try:
                await self._client.delete(self.keys.alive(self.consumer))
            except connection_errors():
                pass  # it expires on its own
            await self._client.aclose()
            lifecycle.stop(self.middlewares)

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

    async def _create_groups(self) -> None:
        for name in self.nodes:
            await ensure_group(self._client, self.keys.node_stream(name))

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
                        f"no Redis answered at {_host_of(self.url)} within {within:g}s "
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
                redact_url(self.url),
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

    async def _take_over_dead_workers_entries(self, slots: HandlerSlots) -> None:
        """Take over what dead workers held (up to the free slots of each node) and, now and
        then, forget consumers gone for good. The reader calls this every `claim_idle_s / 2`,
        between two reads."""
        from redis.exceptions import ResponseError

        # Forgetting gone consumers is housekeeping: a slower cadence (they are only removed
        # after `forget_consumers_after_s` anyway) keeps an idle worker's commands few.
        forget = time.monotonic() >= self._next_forget
        if forget:
            every = max(self.settings.claim_idle_s / 2, self.settings.forget_consumers_after_s / 2)
            self._next_forget = time.monotonic() + every
        for name in self.nodes:
            stream = self.keys.node_stream(name)
            free = slots.free(name)
            slots.take(name, free)
            started = 0
            try:
                if free:
                    entries, exhausted = await self._claim_stale(name, stream, free)
                    for entry_id, fields in entries:
                        if entry_id in exhausted:
                            job = self._give_up(name, stream, entry_id, fields, exhausted[entry_id])
                        else:
                            job = self._handle(name, stream, entry_id, fields)
                        self._start(slots, name, job)
                        started += 1
                if forget:
                    await self._forget_gone_consumers(stream)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis lost the group (restarted without persistence): the reader makes
                # it again; the next round claims.
            except connection_errors() as exc:
                self._log_outage(exc)
            finally:
                slots.give_back(name, free - started)

    async def _claim_stale(
        self, name: str, stream: str, count: int
    ) -> tuple[list[tuple[str, dict[str, str]]], dict[str, int]]:
        """Entries whose worker died holding them, taken over; with those a worker died
        holding `max_deliveries` times or more (they go to the dead letters).

        An entry idle past `claim_idle_s` is only taken from a worker whose heartbeat has
        expired (`...:alive:<consumer>`, renewed with its entries): a live worker that is
        merely slow keeps its work, and no death is counted against the message (counting
        deliveries would dead-letter healthy messages on a busy machine)."""
        idle_ms = int(self.settings.claim_idle_s * 1000)
        client = self._client
        pending = await client.xpending_range(
            stream, GROUP, min="-", max="+", count=count, idle=idle_ms
        )
        if not pending:
            return [], {}
        owners = sorted({row["consumer"] for row in pending} - {self.consumer})
        alive = await self._alive(owners)
        orphans = [
            row
            for row in pending
            if row["consumer"] != self.consumer and row["consumer"] not in alive
        ]
        if not orphans:
            return [], {}
        claimed: list[tuple[str, dict[str, str]]] = [
            (entry_id, fields)
            for entry_id, fields in await client.xclaim(
                stream, GROUP, self.consumer, idle_ms, [row["message_id"] for row in orphans]
            )
            if fields is not None
        ]
        if not claimed:
            return [], {}
        owners = sorted({row["consumer"] for row in orphans})
        logger.warning(
            "worker %s took over %d entries of %s from %s, which stopped (crashed or killed?)",
            self.consumer,
            len(claimed),
            stream,
            ", ".join(owners),
        )
        ttl_ms = int(self.settings.join_ttl_s * 1000)
        async with client.pipeline(transaction=False) as pipe:
            for entry_id, _ in claimed:
                pipe.incr(self.keys.deaths(name, entry_id))
                pipe.pexpire(self.keys.deaths(name, entry_id), ttl_ms)
            counts = await pipe.execute()
        deaths = {entry_id: int(counts[2 * i]) for i, (entry_id, _) in enumerate(claimed)}
        exhausted = {
            entry_id: died
            for entry_id, died in deaths.items()
            if died >= self.settings.max_deliveries
        }
        return claimed, exhausted

    async def _forget_gone_consumers(self, stream: str) -> None:
        """Remove consumers (workers) silent for `forget_consumers_after_s` that hold nothing
        and have no heartbeat: dead workers would otherwise stay in the group for ever (a live
        one removed anyway would be recreated by its next read)."""
        threshold = int(max(self.settings.forget_consumers_after_s * 1000, self._dead_after_ms))
        silent = [
            row["name"]
            for row in await self._client.xinfo_consumers(stream, GROUP)
            if row["name"] != self.consumer
            and not int(row["pending"])
            and int(row["idle"]) >= threshold
        ]
        alive = await self._alive(silent)
        for name in silent:
            if name in alive:
                continue
            await self._client.xgroup_delconsumer(stream, GROUP, name)
            logger.info(
                "worker %s removed the silent consumer %s of %s", self.consumer, name, stream
            )

    @property
    def _dead_after_ms(self) -> int:
        """The heartbeat's time to live: how long a worker that stopped renewing it counts
        as running (at least the claim time, and two blocking reads)."""
        settings = self.settings
        return int(max(settings.claim_idle_s, 2 * settings.block_s + 1.0) * 1000)

    async def _renew_claims(self) -> None:
        """Keep this worker's heartbeat and reset the idle time of the entries in progress,
        so no other worker takes them over or counts this worker as dead."""
        every = max(self.settings.claim_idle_s / 3, 0.02)
        while True:
            try:
                await self._client.set(self.keys.alive(self.consumer), "1", px=self._dead_after_ms)
            except connection_errors() as exc:
                self._log_outage(exc)
            for stream, ids in list(self._in_progress.items()):
                if not ids:
                    continue
                try:
                    await self._client.xclaim(
                        stream, GROUP, self.consumer, 0, list(ids), justid=True
                    )
                except connection_errors() as exc:
                    self._log_outage(exc)
            await asyncio.sleep(every)

    async def _report_streams(self) -> None:
        """Publish the served streams' statistics now and then (see `_stats`)."""
        while True:
            await report_quietly(self._client, self.keys, self.nodes)
            await asyncio.sleep(self.settings.stats_interval_s)

    async def _alive(self, consumers: list[str]) -> set[str]:
        """Which of `consumers` are running workers (their heartbeat has not expired)."""
        if not consumers:
            return set()
        async with self._client.pipeline(transaction=False) as pipe:
            for consumer in consumers:
                pipe.exists(self.keys.alive(consumer))
            found = await pipe.execute()
        return {consumer for consumer, exists in zip(consumers, found, strict=True) if exists}

    # -- one entry -----------------------------------------------------------------------------

    async def _handle(self, name: str, stream: str, entry_id: str, fields: dict[str, str]) -> None:
        in_progress = self._in_progress.setdefault(stream, set())
        in_progress.add(entry_id)
        try:
            await self._handle_entry(name, stream, entry_id, fields)
        except Exception:
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
        self, name: str, stream: str, entry_id: str, fields: dict[str, str]
    ) -> None:
        raw = fields.get("e", "")
        try:
            envelope = from_json(raw)
            item = self.codec.decode(envelope["i"])
            reply = str(envelope["r"])
        except Exception as exc:
            await self._undecodable(name, stream, entry_id, fields, exc)
            return
        trace_id: str | None = envelope.get("tr")
        join_size = self._joins.get(name)
        if join_size is not None and trace_id is not None and trace_id not in self.cancelled:
            await self._join(name, join_size, stream, entry_id, envelope, trace_id, reply)
            return
        run = ChainRun()
        ctx = await self._process(name, item, trace_id, reply, run)
        await follow(ctx, run, self._process, self.cancelled)
        # A trace cancelled while its message was processed sends nothing on.
        outputs = [] if trace_id in self.cancelled else run.outputs
        await self._commit_when_reachable(stream, entry_id, trace_id, outputs)

    async def _process(
        self, name: str, item: Any, trace_id: str | None, reply: str, run: ChainRun
    ) -> WorkerContext:
        """Run `item` through node `name` (the `run.hops`-th node for this entry); its
        context holds what it sent."""
        engine = self.engines[name]
        run.hops += 1
        chain = self.chains.chains_after(name, run.hops)
        ctx = WorkerContext(self, engine.node, trace_id, reply, chain=chain)
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
        stream: str,
        entry_id: str,
        trace_id: str | None,
        outputs: list[tuple[str, str]],
        cleanup: Sequence[str] = (),
    ) -> None:
        assert self._gate is not None and self._commits is not None
        delay = 0.05
        while True:
            try:
                for target, _ in outputs:
                    if target != stream and ":in:" in target:
                        await self._gate.wait_for_room(target)
                await self._commits.commit(
                    stream=stream,
                    entry_id=entry_id,
                    cancel_key=self.keys.cancelled(trace_id),
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
        name: str,
        size: int,
        stream: str,
        entry_id: str,
        envelope: dict[str, Any],
        trace_id: str,
        reply: str,
    ) -> None:
        bucket = self.keys.join_bucket(name, trace_id)
        closing = self.keys.join_closing(name, trace_id)
        keys = [stream, self.keys.cancelled(trace_id), bucket, closing]
        args = [GROUP, entry_id, size, to_json(envelope["i"]).decode()]
        args.append(int(self.settings.join_ttl_s * 1000))
        delay = 0.005
        while True:
            try:
                answer = await self._join_script(keys=keys, args=args)
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
        ctx = WorkerContext(self, engine.node, trace_id, reply, chain=chain)
        first = items[0]
        joined: Any = items
        if isinstance(first, Message):
            joined = first.model_copy(update={"payload": [item.payload for item in items]})
        # join_k's own function keeps buckets in process memory; here the bucket is in Redis
        # and the joined value is the node's result, routed by the engine like any other.
        await engine.deliver(items[-1], ctx, joined, trace_id)
        # What follows the join on this worker runs now; a crash redoes the join and the chain
        # from the same bucket (the closing mark keeps it until this commit).
        await follow(ctx, run, self._process, self.cancelled)
        outputs = [] if trace_id in self.cancelled else run.outputs
        await self._commit_when_reachable(
            stream, entry_id, trace_id, outputs, cleanup=(bucket, closing)
        )

    async def _give_up(
        self, name: str, stream: str, entry_id: str, fields: dict[str, str], deaths: int
    ) -> None:
        """An entry whose worker died holding it `max_deliveries` times (a crash, kill or
        out-of-memory each time) goes to the dead letters instead of killing another one."""
        text = (
            f"Node '{name}' did not finish this message: {deaths} worker(s) died while "
            "processing it (a crash, kill -9 or out-of-memory?). It was moved to "
            f"{self.keys.dead_letters}; fix the node, then add the entry back to the node's "
            "stream, or raise max_deliveries"
        )
        metadata = {"deaths": deaths, "dead_letters": self.keys.dead_letters}
        await self._dead_letter(name, stream, entry_id, fields, text, metadata)

    async def _undecodable(
        self, name: str, stream: str, entry_id: str, fields: dict[str, str], exc: Exception
    ) -> None:
        text = (
            f"a message for node '{name}' cannot be decoded by worker {self.consumer}: "
            f"{describe_exception(exc)}. It was moved to {self.keys.dead_letters}. Build the "
            "client and the workers from the same code, declaring the same payload_types"
        )
        await self._dead_letter(name, stream, entry_id, fields, text, {"decode_error": True})

    async def _dead_letter(
        self,
        name: str,
        stream: str,
        entry_id: str,
        fields: dict[str, str],
        text: str,
        metadata: dict[str, Any],
    ) -> None:
        """Move the entry to the dead letters; its client hears of it as a `FlowError` for
        its trace (whatever `emit_errors_to_rookery` says: else its fetch would wait for
        ever), and the trace's join buckets go with it."""
        logger.error("%s (entry %s)", text, entry_id)
        raw = fields.get("e", "")
        trace_id: str | None = None
        reply: str | None = None
        try:
            envelope = from_json(raw)
            trace_id, reply = envelope.get("tr"), str(envelope["r"])
        except Exception:  # not even the envelope reads: the dead letter keeps the raw entry
            pass
        notify: list[tuple[str, str]] = []
        if reply is not None and trace_id is not None:
            engine = self.engines[name]
            ctx = WorkerContext(self, engine.node, trace_id, reply)
            await engine.fail(
                None,
                ctx,
                trace_id,
                UsageError(text),
                code=FlowErrorCode.NODE_EXCEPTION,
                text=text,
                metadata=metadata,
                deliver=True,
            )
            notify = ctx.outputs
        cleanup = [self.keys.deaths(name, entry_id)]
        if trace_id is not None:
            for join in self._all_joins:
                cleanup += [self.keys.join_bucket(join, trace_id)]
                cleanup += [self.keys.join_closing(join, trace_id)]
        await self._move_to_dead_letters(stream, entry_id, raw, text, notify, cleanup)
        if observability.enabled():
            reason = "decode_error" if metadata.get("decode_error") else "deaths"
            await observability.publish(dead_letter_event(self.keys, name, reason))

    async def _move_to_dead_letters(
        self,
        stream: str,
        entry_id: str,
        raw: str,
        error: str,
        notify: Sequence[tuple[str, str]] = (),
        cleanup: Sequence[str] = (),
    ) -> None:
        """Keep the entry in the capped dead-letter stream and take it off `stream`, in one
        transaction with the `notify` outputs (a FlowError for the client) and deleting the
        `cleanup` keys (the trace's join buckets)."""
        fields = {"stream": stream, "id": entry_id, "entry": raw, "error": error}
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.dead_letters, fields, maxlen=_DEAD_LETTERS_KEPT, approximate=True)
            pipe.xack(stream, GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            self._queue_outputs(pipe, notify)
            if cleanup:
                pipe.delete(*cleanup)
            await pipe.execute()

    # -- cancellation --------------------------------------------------------------------------

    async def _listen_for_cancels(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.cancel_channel)
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.cancel_locally(str(message["data"]))
                    self._forget_old_cancels()
            except connection_errors() as exc:
                self._log_outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                await pubsub.aclose()

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


def _host_of(url: str) -> str:
    """`host:port` of a Redis URL: where it points, without credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or 'localhost'}:{port or 6379}"
