"""A worker: consumes node input streams through the consumer group and runs the nodes.

What happens to a message in a node is the kernel's node engine (`penguiflow.runtime.
NodeEngine`); this module is the redis runtime's part. Per served node one reader takes up to
`concurrency` entries at a time (XREADGROUP) and hands each to a handler task. Every
`claim_idle_s / 2` it also takes over entries that another consumer has held for longer than
`claim_idle_s` (XAUTOCLAIM): the entries of a worker that died. A live worker renews its
entries while it works on them, so only dead workers' entries are taken. A finished entry is
acked together with its outputs (`CommitBatcher`).

Structure: readers, the cancel listener and the claim renewal run in one anyio task group.
Each entry's handler is a plain asyncio task the pool owns (an anyio task per message measured
about 50 function calls a hop more; see benchmarks/README.md): on shutdown the readers stop
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

from pydantic_core import from_json, to_json

from penguiflow.errors import FlowErrorCode
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
from ._codec import PayloadCodec
from ._commits import CommitBatcher
from ._context import WorkerContext
from ._outbox import RedisOutbox
from ._streams import GROUP, JOIN_SCRIPT, FlowKeys, ensure_group

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
            await self._until_reachable(stop, self._create_groups)
            if stop.is_set():
                return
            try:
                async with anyio.create_task_group() as loops:
                    for name in self.nodes:
                        loops.start_soon(self._consume, name)
                    loops.start_soon(self._listen_for_cancels)
                    loops.start_soon(self._renew_claims)
                    if on_ready is not None:
                        on_ready(
                            f"nodes {', '.join(self.nodes)} of {self.keys.namespace} on "
                            f"{self.url} as {self.consumer}"
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

    async def _until_reachable(self, stop: asyncio.Event, action: Callable[[], Any]) -> None:
        delay = 0.1
        while not stop.is_set():
            try:
                await action()
                self._outage_logged = False
                return
            except connection_errors() as exc:
                self._log_outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _log_outage(self, exc: BaseException) -> None:
        if not self._outage_logged:
            logger.warning(
                "redis at %s is unreachable (%s); worker %s retries until it is back",
                self.url,
                exc,
                self.consumer,
            )
            self._outage_logged = True

    # -- consuming -----------------------------------------------------------------------------

    async def _consume(self, name: str) -> None:
        import anyio
        from redis.exceptions import ResponseError

        stream = self.keys.node_stream(name)
        slots = anyio.Semaphore(self.settings.concurrency)
        claim_every = max(self.settings.claim_idle_s / 2, 0.05)
        next_claim = 0.0
        delay = 0.1
        while True:
            free = await _acquire_free_slots(slots)
            try:
                entries: list[tuple[str, dict[str, str]]] = []
                exhausted: dict[str, int] = {}
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + claim_every
                    entries, exhausted = await self._claim_stale(stream, free)
                if not entries:
                    response = await self._client.xreadgroup(
                        GROUP,
                        self.consumer,
                        {stream: ">"},
                        count=free,
                        block=int(self.settings.block_s * 1000),
                    )
                    for _, stream_entries in response or ():
                        entries.extend(stream_entries)
                self._outage_logged = False
                delay = 0.1
            except ResponseError as exc:
                _release(slots, free)
                if "NOGROUP" not in str(exc):
                    raise
                # Redis lost the group (restarted without persistence): make it again.
                await ensure_group(self._client, stream)
                continue
            except connection_errors() as exc:
                _release(slots, free)
                self._log_outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except BaseException:
                _release(slots, free)
                raise
            started = 0
            for entry_id, fields in entries:
                if fields is None:  # deleted while pending; XAUTOCLAIM already dropped it
                    continue
                if entry_id in exhausted:
                    job = self._give_up(name, stream, entry_id, fields, exhausted[entry_id])
                else:
                    job = self._handle(name, stream, entry_id, fields)
                task = asyncio.create_task(_holding_slot(slots, job))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
                started += 1
            _release(slots, free - started)

    async def _claim_stale(
        self, stream: str, count: int
    ) -> tuple[list[tuple[str, dict[str, str]]], dict[str, int]]:
        """Entries whose worker stopped renewing them, and those delivered too often."""
        idle_ms = int(self.settings.claim_idle_s * 1000)
        response = await self._client.xautoclaim(
            stream, GROUP, self.consumer, min_idle_time=idle_ms, start_id="0-0", count=count
        )
        claimed: list[tuple[str, dict[str, str]]] = [
            (entry_id, fields) for entry_id, fields in response[1] if fields is not None
        ]
        if not claimed:
            return [], {}
        logger.info(
            "worker %s took over %d stale entries of %s", self.consumer, len(claimed), stream
        )
        async with self._client.pipeline(transaction=False) as pipe:
            for entry_id, _ in claimed:
                pipe.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
            details = await pipe.execute()
        exhausted = {
            row[0]["message_id"]: int(row[0]["times_delivered"])
            for row in details
            if row and int(row[0]["times_delivered"]) > self.settings.max_deliveries
        }
        return claimed, exhausted

    async def _renew_claims(self) -> None:
        """Reset the idle time of entries in progress so no other worker takes them over."""
        every = max(self.settings.claim_idle_s / 3, 0.02)
        while True:
            await asyncio.sleep(every)
            for stream, ids in list(self._in_progress.items()):
                if not ids:
                    continue
                try:
                    await self._client.xclaim(
                        stream, GROUP, self.consumer, 0, list(ids), justid=True
                    )
                except connection_errors() as exc:
                    self._log_outage(exc)

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
            await self._dead_letter(stream, entry_id, raw, exc)
            return
        trace_id: str | None = envelope.get("tr")
        join_size = self._joins.get(name)
        if join_size is not None and trace_id is not None and trace_id not in self.cancelled:
            await self._join(name, join_size, stream, entry_id, envelope, trace_id, reply)
            return
        engine = self.engines[name]
        ctx = WorkerContext(self, engine.node, trace_id, reply)
        lane = Lane(asyncio.current_task())
        lanes = self._lanes.setdefault(trace_id or "", set())
        lanes.add(lane)
        try:
            await engine.process(item, ctx, lane, trace_id)
        except Exception as exc:
            await engine.fail_internal(item, ctx, trace_id, exc)
        finally:
            lanes.discard(lane)
            if not lanes:
                self._lanes.pop(trace_id or "", None)
        # A trace cancelled while its message was processed sends nothing on.
        outputs = [] if trace_id in self.cancelled else ctx.outputs
        await self._commit_when_reachable(stream, entry_id, trace_id, outputs)

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
        ctx = WorkerContext(self, engine.node, trace_id, reply)
        first = items[0]
        joined: Any = items
        if isinstance(first, Message):
            joined = first.model_copy(update={"payload": [item.payload for item in items]})
        # join_k's own function keeps buckets in process memory; here the bucket is in Redis
        # and the joined value is the node's result, routed by the engine like any other.
        await engine.deliver(items[-1], ctx, joined, trace_id)
        await self._commit_when_reachable(
            stream, entry_id, trace_id, ctx.outputs, cleanup=(bucket, closing)
        )

    async def _give_up(
        self, name: str, stream: str, entry_id: str, fields: dict[str, str], deliveries: int
    ) -> None:
        """An entry taken over more than max_deliveries times: some worker died on it each
        time (a crash, kill or out-of-memory), so it goes to the dead letters instead."""
        text = (
            f"Node '{name}' did not finish this message in {deliveries} deliveries: each "
            "worker that took it stopped without finishing (a crash, kill -9 or out-of-memory?). "
            f"It was moved to {self.keys.dead_letters}; fix the node, then add the entry back "
            "to the node's stream, or raise max_deliveries"
        )
        raw = fields.get("e", "")
        trace_id: str | None = None
        reply: str | None = None
        try:
            envelope = from_json(raw)
            trace_id, reply = envelope.get("tr"), str(envelope["r"])
        except Exception:  # undecodable as well: the dead letter keeps the raw entry
            pass
        logger.error("%s (entry %s, trace %s)", text, entry_id, trace_id)
        notify: list[tuple[str, str]] = []
        if reply is not None and trace_id is not None:
            engine = self.engines[name]
            ctx = WorkerContext(self, engine.node, trace_id, reply)
            metadata = {"deliveries": deliveries, "dead_letters": self.keys.dead_letters}
            await engine.fail(
                None,
                ctx,
                trace_id,
                RuntimeError(text),
                code=FlowErrorCode.NODE_EXCEPTION,
                text=text,
                metadata=metadata,
            )
            notify = ctx.outputs
        await self._move_to_dead_letters(stream, entry_id, raw, text, notify=notify)

    async def _dead_letter(self, stream: str, entry_id: str, raw: str, exc: Exception) -> None:
        logger.error(
            "entry %s of %s cannot be decoded (%s); moved to %s",
            entry_id,
            stream,
            exc,
            self.keys.dead_letters,
        )
        await self._move_to_dead_letters(stream, entry_id, raw, str(exc))

    async def _move_to_dead_letters(
        self,
        stream: str,
        entry_id: str,
        raw: str,
        error: str,
        notify: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Keep the entry in the capped dead-letter stream and take it off `stream`, in one
        transaction with the `notify` outputs (a FlowError for the client)."""
        fields = {"stream": stream, "id": entry_id, "entry": raw, "error": error}
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.dead_letters, fields, maxlen=_DEAD_LETTERS_KEPT, approximate=True)
            pipe.xack(stream, GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            self._queue_outputs(pipe, notify)
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


async def _acquire_free_slots(slots: Any) -> int:
    """Wait for one free handler slot, then take every other free one: how many entries the
    next read may take."""
    import anyio

    await slots.acquire()
    taken = 1
    while True:
        try:
            slots.acquire_nowait()
        except anyio.WouldBlock:
            return taken
        taken += 1


def _release(slots: Any, count: int) -> None:
    for _ in range(count):
        slots.release()


async def _holding_slot(slots: Any, job: Awaitable[None]) -> None:
    try:
        await job
    finally:
        slots.release()
