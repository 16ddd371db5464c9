"""`PenguiFlow`: the in-process runtime. Builds the graph, runs one worker per node under a
supervising task group, and moves items between them over bounded queues.

What happens to a message inside a node is the node engine's (`_engine.py`); this module is the
local runtime's part: edges, per-trace accounting, Rookery and round trips, the lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ._context import Context
from ._engine import NodeEngine, TraceCancelled, current_trace
from ._events import EventPublisher, logger
from ._flow_resource import FlowResource
from ._graph import OPEN_SEA, ROOKERY, Adjacency, Endpoint, Floe, build_graph, display_name
from ._lifecycle import FlowLifecycle
from ._local_outbox import LocalOutbox
from ._rookery import (
    CancelledTrace,
    ResultRouter,
    TracedValue,
    belongs_to,
    stamp_trace,
    unwrap,
)
from ._supervisor import Supervisor
from ._traces import TraceTable
from ._worker import NodeWorker
from .current import flow_scope
from .errors import (
    FlowError,
    FlowErrorCode,
    InvalidTypeError,
    PenguiFlowError,
    UsageError,
    describe_exception,
)
from .observability import _sinks
from .tracecontext import stamp_message
from .types import WM, Message, StreamChunk

if TYPE_CHECKING:
    from ._definition import FlowDefinition
    from .bus import MessageBus
    from .middlewares import Middleware
    from .node import Node
    from .registry import ModelRegistry
    from .state import RemoteBinding, StateStore, StoredEvent

__all__ = ["DEFAULT_QUEUE_MAXSIZE", "PenguiFlow", "WorkerCrashedError"]

DEFAULT_QUEUE_MAXSIZE = 64


class WorkerCrashedError(PenguiFlowError, RuntimeError):
    """A node worker died outside the per-message supervision (a bug in PenguiFlow or a
    plugin). `stop()` raises it after stopping everything else; the cause is chained."""


class PenguiFlow(FlowResource):
    """A flow of async nodes connected by bounded queues, from OpenSea to Rookery.

    The in-process runtime (`runtime="local"`). `stop()` stops the workers and keeps what is
    queued for a later `run()`; `aclose()` (or leaving `async with`) stops the flow and closes
    the drivers it built from URLs (`state_store="sqlite:///..."`); drivers passed as objects
    belong to the caller."""

    def __init__(
        self,
        *adjacencies: Adjacency,
        queue_maxsize: int = DEFAULT_QUEUE_MAXSIZE,
        allow_cycles: bool = False,
        middlewares: Sequence[Middleware] | None = None,
        emit_errors_to_rookery: bool = False,
        state_store: StateStore | str | None = None,
        message_bus: MessageBus | str | None = None,
        payload_types: Sequence[type[BaseModel]] = (),
    ) -> None:
        # The graph first: a bad one fails before any driver is opened from a URL.
        self._adjacencies = adjacencies
        graph = build_graph(adjacencies, allow_cycles=allow_cycles)
        if isinstance(queue_maxsize, bool) or not isinstance(queue_maxsize, int):
            # PenguiFlow's rule: 0 or less is unbounded (asyncio.Queue's), so -5 stays valid.
            raise InvalidTypeError(
                f"queue_maxsize must be an int (items per edge queue; 0 or less: unbounded); "
                f"got {type(queue_maxsize).__name__} {queue_maxsize!r}"
            )
        self._queue_maxsize = queue_maxsize
        # Not used in process; distributed runtimes rebuild these types from other processes.
        self._payload_types = tuple(payload_types)
        self._allow_cycles = allow_cycles
        self._middlewares: list[Middleware] = self._own_middlewares(middlewares)
        self._emit_errors_to_rookery = emit_errors_to_rookery
        self._state_store: StateStore | None = self._own("state_store", state_store)
        self._message_bus: MessageBus | None = self._own("message_bus", message_bus)
        self._events = EventPublisher(self._middlewares, self._state_store)
        self._lifecycle = FlowLifecycle(self, "local")
        self._registry: ModelRegistry | None = None
        self._running = False
        self._stopped = False
        #: the supervising task while running (a list, as PenguiFlow's tests inspect it)
        self._tasks: list[asyncio.Task[Any]] = []
        self._supervisor = Supervisor(self._worker_died)
        self._workers: list[NodeWorker] = []
        self._external_tasks: dict[str, set[asyncio.Task[Any]]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._wm_hops: dict[str, int] = {}
        self._traces = TraceTable(
            maxsize=queue_maxsize,
            on_drained=self._on_trace_drained,
            on_cancel_finish=self._on_trace_cancel_finish,
        )
        self._outbox = LocalOutbox(
            traces=self._traces,
            events=self._events,
            queue_maxsize=queue_maxsize,
            emit=self._emit_result,
            to_rookery=self._to_rookery,
        )

        self._nodes: list[Node] = list(graph.successors)
        vertices: list[Node | Endpoint] = [*self._nodes, OPEN_SEA, ROOKERY]
        self._contexts: dict[Node | Endpoint, Context] = {
            vertex: Context(vertex, self) for vertex in vertices
        }
        self._opensea_ctx = self._contexts[OPEN_SEA]
        self._rookery_ctx = self._contexts[ROOKERY]
        self._router = ResultRouter(self._rookery_ctx, queue_maxsize)
        self._floes: set[Floe] = set()
        for node, targets in graph.successors.items():
            for target in targets:
                self._connect(node, target)
        for node in graph.ingress:
            self._connect(OPEN_SEA, node)
        for node in graph.egress:
            self._connect(node, ROOKERY)

    def _connect(self, source: Node | Endpoint, target: Node | Endpoint) -> None:
        floe = Floe(source, target, maxsize=self._queue_maxsize)
        self._floes.add(floe)
        self._contexts[source].add_outgoing_floe(floe)
        self._contexts[target].add_incoming_floe(floe)

    def __repr__(self) -> str:
        names = ", ".join(display_name(node) for node in self._nodes)
        return f"PenguiFlow([{names}], running={self._running})"

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def registry(self) -> ModelRegistry | None:
        return self._registry

    @property
    def running(self) -> bool:
        return self._running

    @property
    def middlewares(self) -> list[Middleware]:
        """The middlewares the flow was given or added, in call order (a copy; without the
        sinks hook plugins attach while it runs)."""
        return self._lifecycle.own_middlewares(self._middlewares)

    @property
    def state_store(self) -> StateStore | None:
        return self._state_store

    def add_middleware(self, middleware: Middleware) -> None:
        self._middlewares.extend(self._own_middlewares([middleware]))

    def run(self, *, registry: ModelRegistry | None = None) -> None:
        """Start one worker task per node (needs a running event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise UsageError(
                "PenguiFlow.run() found no running event loop: call it from async code, for "
                "example inside `async def main(): flow.run(); ...` run with asyncio.run(main())"
            ) from None
        if self._running:
            raise UsageError("PenguiFlow already running")
        self._check_open()
        if registry is not None:
            missing = sorted(
                str(node.name)
                for node in self._nodes
                if node.policy.validate != "none" and not registry.has(str(node.name))
            )
            if missing:
                raise UsageError(
                    "ModelRegistry is missing entries for nodes requiring validation: "
                    + ", ".join(missing)
                    + " (register them with registry.register(name, InModel, OutModel) "
                    "or give them NodePolicy(validate='none'))"
                )
        emit_errors = self._emit_errors_to_rookery
        # Event sinks may have changed (reset_hooks, a plugin): read them before any message.
        self._events.refresh()
        workers = [
            NodeWorker(
                NodeEngine(
                    node, self._outbox, registry=registry, emit_errors_to_rookery=emit_errors
                ),
                self._contexts[node],
                self._traces,
            )
            for node in self._nodes
        ]
        self._registry = registry
        self._workers = workers
        # Hooks first: in strict mode a failing plugin stops run() with nothing started.
        try:
            self._lifecycle.start(self._middlewares)
        except BaseException:
            self._workers = []
            raise
        self._running = True
        self._stopped = False
        self._outbox.lanes = [worker.lane for worker in workers]
        if workers:
            jobs = [(f"penguiflow:{worker.node.name}", worker.run) for worker in workers]
            with flow_scope(self):
                self._tasks = [self._supervisor.start(jobs, name="penguiflow:flow")]

    def _worker_died(self, crash: BaseException) -> None:
        text = (
            f"a worker of {self!r} died ({type(crash).__name__}: {describe_exception(crash)}); "
            "every worker of the flow was stopped. This is a bug in PenguiFlow or a plugin: "
            "please report it with this traceback"
        )
        logger.error(text, exc_info=crash)
        # Whoever waits on fetch() hears of it instead of waiting for ever.
        error = FlowError(
            trace_id=None,
            node_name=None,
            code=FlowErrorCode.INTERNAL_ERROR,
            message=text,
            original_exc=crash,
        )
        incoming = next(iter(self._rookery_ctx._incoming.values()), None)
        if incoming is not None and not incoming.queue.full():
            incoming.queue.put_nowait(error)
        else:
            self._rookery_ctx._buffer.append(error)

    async def stop(self) -> None:
        """Stop workers and background tasks; queued items stay queued for a later `run()`.

        Raises `WorkerCrashedError` (after stopping everything) when a worker had died."""
        if not self._running:
            return
        dispatcher = self._router.task
        if dispatcher is not None:
            dispatcher.cancel()
        self._tasks = []
        crash = await self._supervisor.stop()
        external = [task for group in self._external_tasks.values() for task in group]
        self._external_tasks.clear()
        for task in external:
            task.cancel()
        await asyncio.gather(*external, return_exceptions=True)
        background, self._background = list(self._background), set()
        await asyncio.gather(*background, return_exceptions=True)
        # Results the dispatcher took from Rookery but nobody fetched go back in front of it.
        leftovers = await self._router.stop()
        self._rookery_ctx._buffer.extendleft(reversed(leftovers))
        self._traces.clear()
        self._wm_hops.clear()
        self._workers = []
        self._outbox.lanes = []
        self._running = False
        self._stopped = True
        self._lifecycle.stop(self._middlewares)
        if crash is not None:
            raise WorkerCrashedError(
                f"{self!r} stopped after one of its workers died: {type(crash).__name__}: "
                f"{describe_exception(crash)} (see the log for the traceback)"
            ) from crash

    @property
    def definition(self) -> FlowDefinition:
        """The flow's nodes and edges by name (see `penguiflow.runtime.FlowDefinition`)."""
        from ._definition import define_flow

        return define_flow(
            *self._adjacencies,
            allow_cycles=True,  # checked when the flow was built
            queue_maxsize=self._queue_maxsize,
            emit_errors_to_rookery=self._emit_errors_to_rookery,
            payload_types=self._payload_types,
        )

    # -- emitting ------------------------------------------------------------------------------

    async def emit(self, msg: Any, to: Any = None, *, trace_id: str | None = None) -> None:
        """Send `msg` into the flow (to every ingress node, or `to`), waiting for capacity.

        Called inside a span (`penguiflow.tracecontext`: a web request's, a node's), a
        `Message` without a traceparent of its own gets that span's in `meta`, so the flow's
        work joins the caller's trace."""
        msg = stamp_message(msg)
        if trace_id is None:
            await self._emit_outside(msg, to)
            return
        if not self._running:
            raise UsageError("PenguiFlow is not running")
        msg = stamp_trace(msg, trace_id)
        router = self._router
        await router.acquire(trace_id)
        router.subscribe(trace_id)
        router.start()
        sent = False
        try:
            sent = await self._emit_outside(msg, to)
        finally:
            if not sent:
                router.release(trace_id)

    async def _emit_outside(self, msg: Any, to: Any) -> bool:
        self._check_not_stopped("emit")
        if self._is_wm_duplicate(msg):
            return False
        await self._opensea_ctx.emit(msg, to)
        return True

    def emit_nowait(self, msg: Any, to: Any = None, *, trace_id: str | None = None) -> None:
        """Send without waiting: a full queue raises `asyncio.QueueFull`."""
        if trace_id is not None:
            raise UsageError(
                "emit_nowait(trace_id=...) is not supported; use await emit(..., trace_id=...)"
            )
        self._check_not_stopped("emit_nowait")
        msg = stamp_message(msg)
        if self._is_wm_duplicate(msg):
            return
        self._opensea_ctx.emit_nowait(msg, to)

    async def emit_chunk(
        self,
        *,
        parent: Message,
        text: str,
        stream_id: str | None = None,
        seq: int | None = None,
        done: bool = False,
        meta: dict[str, Any] | None = None,
        to: Any = None,
    ) -> StreamChunk:
        return await self._opensea_ctx.emit_chunk(
            parent=parent, text=text, stream_id=stream_id, seq=seq, done=done, meta=meta, to=to
        )

    def _check_not_stopped(self, what: str) -> None:
        if self._stopped and not self._running:
            raise UsageError(
                f"{what}() called after stop(); the message was not sent. Call run() again "
                "before emitting, or create a new flow"
            )

    def _is_wm_duplicate(self, msg: Any) -> bool:
        if isinstance(msg, Message) and isinstance(msg.payload, WM):
            last = self._wm_hops.get(msg.trace_id)
            return last is not None and last == msg.payload.hops
        return False

    # -- moving items (every enqueue goes through here) ----------------------------------------

    async def _send_many(self, floes: Iterable[Floe], item: Any) -> None:
        """Enqueue `item` on each of `floes` in order, waiting while one is full (every
        enqueue of the flow goes through here or `_send_nowait`)."""
        if self._stopped and not self._running:
            self._check_not_stopped("emit")
        if _sinks.snapshot:
            # Someone listens, so a running node has a span: what it sends carries it.
            item = stamp_message(item)
        traces = self._traces
        item_trace = getattr(item, "trace_id", None)
        for floe in floes:
            # `_admit`, inlined: this is the per-hop path and the call costs ~0.1 us a hop.
            sent, trace_id = item, item_trace
            if floe.target is ROOKERY:
                sent, trace_id = self._entering_rookery(item, trace_id)
            if trace_id is not None:
                traces.add(trace_id)
            try:
                if self._message_bus is not None:
                    await self._publish(floe, sent, trace_id)
                queue = floe.queue
                if queue.full():
                    await queue.put(sent)
                else:
                    queue.put_nowait(sent)
            except BaseException:
                if trace_id is not None:
                    traces.finalize(trace_id)
                raise

    def _send(self, floe: Floe, item: Any) -> Coroutine[Any, Any, None]:
        return self._send_many((floe,), item)

    def _emit_result(self, ctx: Context, result: Any) -> Coroutine[Any, Any, None]:
        """A node's result to every successor (the engine's `Outbox.emit`). Returns the
        coroutine instead of awaiting it: one frame less on the per-hop path."""
        return self._send_many(ctx._outgoing.values(), result)

    def _send_nowait(self, floe: Floe, item: Any) -> None:
        if _sinks.snapshot:
            item = stamp_message(item)
        item, trace_id = self._admit(floe.target, item)
        try:
            floe.queue.put_nowait(item)
        except BaseException:
            # Unlike PenguiFlow, a refused item does not stay counted as pending.
            if trace_id is not None:
                self._traces.finalize(trace_id)
            raise
        if self._message_bus is not None:
            self._spawn(self._publish(floe, item, trace_id))

    def _admit(self, target: Any, item: Any) -> tuple[Any, str | None]:
        """Count `item` for its trace before it is enqueued towards `target` (tagging raw
        results entering Rookery with their trace); the caller finalizes if the put fails."""
        trace_id = getattr(item, "trace_id", None)
        if target is ROOKERY:
            item, trace_id = self._entering_rookery(item, trace_id)
        if trace_id is not None:
            self._traces.add(trace_id)
        return item, trace_id

    def _entering_rookery(self, item: Any, trace_id: str | None) -> tuple[Any, str | None]:
        if trace_id is None:
            if self._router.subscriptions:
                current = current_trace.get()
                if current is not None and current in self._router.subscriptions:
                    return TracedValue(current, item), current
            return item, None
        if isinstance(item, Message) and isinstance(item.payload, WM):
            self._wm_hops[trace_id] = item.payload.hops
        return item, trace_id

    async def _wait_for_capacity(self, trace_id: str, offset: int) -> None:
        await self._traces.wait_capacity(trace_id, offset=offset)

    async def _to_rookery(self, ctx: Context, item: Any) -> None:
        """Divert a result (final answer, deadline, error) straight to Rookery."""
        floe = ctx._outgoing.get(ROOKERY)
        if floe is None:
            incoming = self._rookery_ctx._incoming
            floe = next(iter(incoming.values()), None)
        if floe is not None:
            await self._send(floe, item)
            return
        item, trace_id = self._admit(ROOKERY, item)
        if self._message_bus is not None:
            await self._publish(Floe(ctx.owner, ROOKERY, maxsize=1), item, trace_id)
        self._rookery_ctx._buffer.append(item)

    async def _publish(self, floe: Floe, item: Any, trace_id: str | None) -> None:
        from .bus import BusEnvelope

        bus = self._message_bus
        assert bus is not None
        source = display_name(floe.source) if floe.source is not None else "*"
        target = display_name(floe.target) if floe.target is not None else "*"
        headers = getattr(item, "headers", None)
        meta = getattr(item, "meta", None)
        envelope = BusEnvelope(
            edge=f"{source}->{target}",
            source=source,
            target=target,
            trace_id=trace_id,
            payload=item,
            headers=headers.model_dump() if isinstance(headers, BaseModel) else None,
            meta=dict(meta) if meta else None,
        )
        try:
            await bus.publish(envelope)
        except Exception as exc:
            logger.exception(
                "message_bus_publish_failed",
                extra={"edge": envelope.edge, "trace_id": trace_id, "exception": repr(exc)},
            )

    # -- fetching ------------------------------------------------------------------------------

    async def fetch(self, from_: Any = None, *, trace_id: str | None = None) -> Any:
        """The next result from Rookery; with `trace_id`, the next result of that trace."""
        router = self._router
        if trace_id is not None:
            if from_ is not None:
                raise UsageError("fetch(trace_id=...) does not support from_ filtering")
            router.start()
            item = await router.fetch_trace(trace_id)
            if type(item) is CancelledTrace:
                return self._trace_cancelled_result(trace_id)
        elif router.active:
            if from_ is not None:
                raise UsageError(
                    "fetch(from_=...) is not supported once trace-scoped fetching is enabled"
                )
            assert router.global_results is not None
            item = await router.global_results.get()
        else:
            item = await self._rookery_ctx.fetch(from_)
        item_trace = getattr(item, "trace_id", None)
        if item_trace is not None:
            self._traces.finalize(item_trace)
        return unwrap(item)

    def _trace_cancelled_result(self, trace_id: str) -> FlowError:
        """What `fetch(trace_id=...)` gives when the trace is cancelled while it waits: a
        `FlowError` (`TRACE_CANCELLED`) when errors go to Rookery, else `TraceCancelled`."""
        if not self._emit_errors_to_rookery:
            raise TraceCancelled(trace_id)
        return FlowError(
            trace_id=trace_id,
            node_name=None,
            code=FlowErrorCode.TRACE_CANCELLED,
            message=f"trace {trace_id} was cancelled while its result was awaited",
        )

    async def fetch_any(self, from_: Any = None, *, trace_id: str | None = None) -> Any:
        return await self.fetch(from_, trace_id=trace_id)

    # -- cancellation --------------------------------------------------------------------------

    async def cancel(self, trace_id: str) -> bool:
        """Cancel one trace everywhere in the flow; False if it is unknown or finished."""
        if not self._running:
            raise UsageError("PenguiFlow is not running")
        pending = self._traces.pending(trace_id)
        inflight = self._inflight(trace_id)
        if pending <= 0 and inflight == 0:
            return False
        if self._traces.mark_cancelled(trace_id) and self._observed(logging.INFO):
            await self._outbox.record(
                "trace_cancel_start",
                self._opensea_ctx,
                trace_id,
                0,
                None,
                logging.INFO,
                {"pending": pending},
            )
        purged: list[Any] = []
        for floe in self._floes:
            purged.extend(floe.queue.remove_where(belongs_to(trace_id)))
        buffer = self._rookery_ctx._buffer
        if buffer:
            belongs = belongs_to(trace_id)
            purged.extend(item for item in buffer if belongs(item))
            kept = [item for item in buffer if not belongs(item)]
            buffer.clear()
            buffer.extend(kept)
        purged.extend(self._router.cancel(trace_id))
        for worker in self._workers:
            worker.lane.interrupt(trace_id)
        for _ in purged:
            self._traces.finalize(trace_id)
        return True

    def _on_trace_drained(self, trace_id: str) -> None:
        self._wm_hops.pop(trace_id, None)

    def _on_trace_cancel_finish(self, trace_id: str) -> None:
        if self._observed(logging.INFO):
            self._spawn(
                self._outbox.record(
                    "trace_cancel_finish", self._rookery_ctx, trace_id, 0, None, logging.INFO
                )
            )

    # -- events --------------------------------------------------------------------------------

    def _observed(self, level: int) -> bool:
        return self._events.observed(level)

    def _inflight(self, trace_id: str) -> int:
        return self._outbox.inflight(trace_id)

    async def record_remote_event(
        self,
        *,
        event: str,
        node: Node,
        context: Context,
        trace_id: str | None,
        latency_ms: float | None,
        level: int = logging.INFO,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a remote-call event for `node` (used by `RemoteNode`)."""
        await self._outbox.record(event, context, trace_id, 0, latency_ms, level, extra)

    # -- traces, external tasks, persistence ---------------------------------------------------

    def ensure_trace_event(self, trace_id: str) -> asyncio.Event:
        """The event set when `trace_id` is cancelled (created if missing)."""
        return self._traces.ensure_event(trace_id)

    @property
    def _trace_events(self) -> dict[str, asyncio.Event]:
        return {tid: s.event for tid, s in self._traces.states.items() if s.event is not None}

    def register_external_task(self, trace_id: str | None, task: asyncio.Task[Any]) -> None:
        """Track a task working for `trace_id`; it is cancelled at `stop()`."""
        if trace_id is None:
            return
        group = self._external_tasks.setdefault(trace_id, set())
        group.add(task)

        def _forget(done: asyncio.Task[Any]) -> None:
            tasks = self._external_tasks.get(trace_id)
            if tasks is not None:
                tasks.discard(done)
                if not tasks:
                    del self._external_tasks[trace_id]

        task.add_done_callback(_forget)

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        store = self._state_store
        if store is None:
            return
        try:
            await store.save_remote_binding(binding)
        except Exception as exc:
            logger.exception(
                "state_store_binding_failed",
                extra={"trace_id": getattr(binding, "trace_id", None), "exception": repr(exc)},
            )

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        """The events the state store saved for `trace_id`, once none is still being saved
        (so a read right after `fetch()` includes the events of the result's delivery)."""
        if self._state_store is None:
            raise UsageError(
                "PenguiFlow was created without a state_store "
                "(pass create(..., state_store=...) to record history)"
            )
        await self._events.settled(trace_id)
        return await self._state_store.load_history(trace_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
