"""The node engine: what happens to one message in one node, for every runtime.

Given a node, a message, the node's context and an `Outbox` (the few things the engine needs
from the runtime it runs in), the engine applies the whole per-message contract: deadline at
pick-up, dropped messages of cancelled traces, the circuit breaker, the timeout, retries with
capped backoff, validation through the registry, result routing (controller loops with hop and
token budgets, final answers diverted to Rookery), events, and the `FlowError` a failure
becomes. The in-process runtime and every distributed runtime call it; none re-implements it.

The engine knows nothing of flows, queues or processes. It sits below every runtime: this
module imports only the kernel's data types (pluggy's `_callers` is the model: the manager
injects what the caller needs, the caller never imports the manager).

User code runs inside the caller's task (no task per invocation). A trace cancelled while its
message is being processed interrupts the invocation through its `Lane`: the lane's task is
cancelled and the engine turns that back into `TraceCancelled` with `Task.uncancel()`.

When event sinks listen (`penguiflow.observability`), each attempt of a node at a message is a
span: a child of the message's context (`message_span`), current while the node runs and its
results are sent (`using_span` semantics), so the node's events carry it, what the node calls
(an LLM, a tool) is its child, and the runtime stamps it on the messages the node sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from ._circuit import CircuitBreaker
from .errors import (
    FlowError,
    FlowErrorCode,
    NodeTimeoutError,
    PenguiFlowError,
    describe_exception,
    describe_exception_repr,
)
from .observability import _current_tenant, _sinks
from .tracecontext import _current as _current_span
from .tracecontext import _parent_of
from .types import WM, FinalAnswer, Message

if TYPE_CHECKING:
    from .node import Node
    from .registry import ModelRegistry

__all__ = [
    "BUDGET_EXCEEDED_TEXT",
    "DEADLINE_EXCEEDED_TEXT",
    "TOKEN_BUDGET_EXCEEDED_TEXT",
    "Lane",
    "NodeEngine",
    "Outbox",
    "TraceCancelled",
    "current_trace",
]

BUDGET_EXCEEDED_TEXT = "Hop budget exhausted"
DEADLINE_EXCEEDED_TEXT = "Deadline exceeded"
TOKEN_BUDGET_EXCEEDED_TEXT = "Token budget exhausted"

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR

logger = logging.getLogger("penguiflow.core")

#: The trace a node is processing; read when a raw (untraced) result enters Rookery.
current_trace: ContextVar[str | None] = ContextVar("penguiflow_current_trace", default=None)

_ROUTING_ERRORS = (KeyError, TypeError, ValueError)


class TraceCancelled(PenguiFlowError):
    """The trace was cancelled while this code was working on it."""

    def __init__(self, trace_id: str | None) -> None:
        super().__init__(f"trace cancelled: {trace_id}")
        self.trace_id = trace_id


class Outbox(Protocol):
    """What the engine needs from the runtime a node runs in.

    `emit` sends a result to every successor of the node (`ctx` says which node); loop-backs
    and explicit targets go through `ctx.emit(result, to=...)`. `to_rookery` diverts an item
    (a final answer, a deadline or budget stop, a `FlowError`) to the flow's results.
    `discard_attempt` is called before a failed attempt is retried: a runtime that holds a
    node's outputs until the message is done drops that attempt's outputs here."""

    def observed(self, level: int) -> bool:
        """Whether an event at `level` reaches anyone (checked before one is built)."""
        ...

    async def record(
        self,
        event_type: str,
        ctx: Any,
        trace_id: str | None,
        attempt: int,
        latency_ms: float | None,
        level: int,
        extra: dict[str, Any] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        """Build the `FlowEvent` and hand it to the runtime's listeners."""
        ...

    def is_cancelled(self, trace_id: str) -> bool: ...

    async def emit(self, ctx: Any, result: Any) -> None: ...

    async def to_rookery(self, ctx: Any, item: Any) -> None: ...

    def discard_attempt(self, ctx: Any) -> None: ...


class Lane:
    """Where one message at a time is processed: the window a trace cancel may interrupt.

    A runtime gives each concurrently running message its own lane (the in-process runtime
    has one per node worker). `interrupt(trace_id)` cancels the lane's task only while user
    code of that trace runs in it; the engine then raises `TraceCancelled` instead of
    `CancelledError`, unless the task is also being stopped."""

    __slots__ = ("cancel_requested", "invoking", "task")

    def __init__(self, task: asyncio.Task[Any] | None = None) -> None:
        self.task = task
        #: the trace whose user code runs in this lane right now
        self.invoking: str | None = None
        self.cancel_requested = False

    def interrupt(self, trace_id: str) -> None:
        if self.invoking != trace_id or self.cancel_requested:
            return
        self.cancel_requested = True
        task = self.task
        # Code that cancels its own trace keeps running to its next return; its result is then
        # discarded. Cancelling our own task would land outside the invocation window.
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def take_trace_cancel(self) -> bool:
        """Consume a pending trace-cancel request; True unless the task is also stopping."""
        if not self.cancel_requested:
            return False
        self.cancel_requested = False
        task = self.task
        if task is None or task is not asyncio.current_task():
            return True
        if task.cancelling():
            task.uncancel()
        return task.cancelling() == 0


class _RoutingError(PenguiFlowError):
    """A node's result could not be delivered; re-invoking the node cannot fix that."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(describe_exception(cause))
        self.cause = cause


class NodeEngine:
    """Runs messages through one node under its policy, for one runtime (see module doc).

    One engine per node and runtime instance: it owns the node's circuit breaker, so the
    breaker counts failures across every message the instance processes."""

    __slots__ = (
        "_emit",
        "_emit_errors",
        "_func",
        "_is_cancelled",
        "_observed",
        "_outbox",
        "_record",
        "breaker",
        "direct",
        "node",
        "registry",
        "warn_non_message",
    )

    def __init__(
        self,
        node: Node,
        outbox: Outbox,
        *,
        registry: ModelRegistry | None = None,
        emit_errors_to_rookery: bool = False,
    ) -> None:
        self.node = node
        self.registry = registry
        self._outbox = outbox
        # Bound once: these run for every message.
        self._observed = outbox.observed
        self._record = outbox.record
        self._is_cancelled = outbox.is_cancelled
        self._emit = outbox.emit
        self._emit_errors = emit_errors_to_rookery
        self._func = node.func
        policy = node.policy
        self.direct = registry is None or policy.validate == "none"
        self.breaker = CircuitBreaker(policy.circuit_breaker) if policy.circuit_breaker else None
        self.warn_non_message = False
        if registry is not None and node.name is not None and registry.has(node.name):
            out_model = registry.models(node.name)[1]
            self.warn_non_message = isinstance(out_model, type) and issubclass(out_model, Message)

    def __repr__(self) -> str:
        return f"NodeEngine({self.node.name!r})"

    # -- one message ---------------------------------------------------------------------------

    async def process(self, message: Any, ctx: Any, lane: Lane, trace_id: str | None) -> None:
        """Handle `message` completely; raises only when the runtime's task is cancelled.

        `trace_id` is `getattr(message, "trace_id", None)`, which the caller needs anyway.
        (One function on purpose: a frame less per message on the hot path.)"""
        token = None
        span_token = tenant_token = None
        parent = None
        if trace_id is not None:
            if isinstance(message, Message):
                deadline = message.deadline_s
                if deadline is not None and time.time() > deadline:
                    await self._deadline_skip(message, ctx, trace_id, deadline)
                    return
            if self._is_cancelled(trace_id):
                await self._note(ctx, trace_id, "trace_cancel_drop")
                return
            token = current_trace.set(trace_id)
            if _sinks.snapshot:
                # Someone listens: this message's attempts become spans under its context.
                parent = _parent_of(message)  # message_span, without re-parsing our own
                headers = getattr(message, "headers", None)
                tenant_token = _current_tenant.set(getattr(headers, "tenant", None))
        node = self.node
        observed = self._observed
        record = self._record
        breaker = self.breaker
        attempt = 0
        try:
            while True:
                # The first attempt follows the check above with no await in between.
                if attempt and trace_id is not None and self._is_cancelled(trace_id):
                    raise TraceCancelled(trace_id)
                if parent is not None:
                    # One span per attempt: a retry is a sibling of the attempt that failed.
                    # Reset once, in `finally`, by the first token.
                    span = parent.child()
                    if span_token is None:
                        span_token = _current_span.set(span)
                    else:
                        _current_span.set(span)
                if breaker is not None and await self._circuit_gate(
                    message, ctx, trace_id, attempt
                ):
                    return
                if observed(DEBUG):
                    await record("node_start", ctx, trace_id, attempt, 0.0, DEBUG)
                started = time.perf_counter()
                try:
                    if trace_id is not None:
                        lane.invoking = trace_id
                    try:
                        timeout_s = node.policy.timeout_s
                        if timeout_s is not None:
                            result = await self._invoke_with_timeout(message, ctx, timeout_s)
                        elif self.direct:
                            result = await self._func(message, ctx)
                        else:
                            result = await node.invoke(message, ctx, registry=self.registry)
                    except asyncio.CancelledError:
                        if lane.take_trace_cancel():
                            raise TraceCancelled(trace_id) from None
                        raise
                    finally:
                        lane.invoking = None
                    if lane.cancel_requested and lane.take_trace_cancel():
                        raise TraceCancelled(trace_id)
                except TraceCancelled:
                    raise
                except Exception as exc:
                    latency = (time.perf_counter() - started) * 1000
                    if await self._failed_attempt(message, ctx, trace_id, exc, attempt, latency):
                        return
                    attempt += 1
                    continue
                if breaker is not None:
                    await self._circuit_event(ctx, breaker.on_success(), trace_id, attempt)
                if result is not None:
                    try:
                        payload = getattr(result, "payload", None)
                        if self.warn_non_message or isinstance(payload, WM | FinalAnswer):
                            await self._deliver(message, ctx, result)
                        else:
                            await self._emit(ctx, result)
                    except _ROUTING_ERRORS as exc:
                        # Re-invoking user code cannot fix a wrong target, and a partial
                        # fan-out would be sent twice: routing failures are not retried.
                        latency = (time.perf_counter() - started) * 1000
                        await self._routing_failed(message, ctx, trace_id, exc, attempt, latency)
                        return
                if observed(INFO):
                    latency = (time.perf_counter() - started) * 1000
                    await record("node_success", ctx, trace_id, attempt, latency, INFO)
                return
        except TraceCancelled:
            # Also raised by user code itself (a cancelled subflow) for an untraced message.
            await self._note(ctx, trace_id, "node_trace_cancelled")
        finally:
            if token is not None:
                current_trace.reset(token)
            if span_token is not None:
                _current_span.reset(span_token)
            if tenant_token is not None:
                _current_tenant.reset(tenant_token)

    async def fail_internal(
        self, message: Any, ctx: Any, trace_id: str | None, exc: BaseException
    ) -> None:
        """Report a failure of the runtime's own code while it handled `message`.

        The message fails with a `FlowError` (`INTERNAL_ERROR`), logged once with the
        traceback, and the caller goes on with its next message. The error reaches Rookery
        whether or not the flow asks for node errors there: it is a loss, not a node error, and
        the caller's `fetch()` would otherwise wait for ever. Never raises."""
        node = self.node
        text = (
            f"PenguiFlow failed while handling a message for node '{node.name}': "
            f"{type(exc).__name__}: {describe_exception(exc)}. The message was dropped; this "
            "is a bug in PenguiFlow or in a plugin, please report it with this traceback"
        )
        try:
            logger.error(text, exc_info=exc, extra={"trace_id": trace_id, "node_name": node.name})
        except Exception:  # a handler that cannot format the traceback must not stop us
            logger.error(text)
        if trace_id is None:
            return
        error = FlowError(
            trace_id=trace_id,
            node_name=node.name,
            node_id=node.node_id,
            code=FlowErrorCode.INTERNAL_ERROR,
            message=text,
            original_exc=exc,
        )
        try:
            await self._outbox.to_rookery(ctx, error)
        except Exception:
            logger.exception("could not deliver the INTERNAL_ERROR of node %s", node.name)

    async def deliver(self, message: Any, ctx: Any, result: Any, trace_id: str | None) -> None:
        """Route `result` as if the node had returned it for `message`.

        For runtimes that compute a node's result themselves (a `join_k` whose buckets live
        outside the process, say): controller loops, budgets and final answers apply as for a
        returned value, and a result that cannot be routed fails the message."""
        try:
            await self._deliver(message, ctx, result)
        except _ROUTING_ERRORS as exc:
            await self._routing_failed(message, ctx, trace_id, exc, 0, 0.0)

    async def fail(
        self,
        message: Any,
        ctx: Any,
        trace_id: str | None,
        exc: Exception,
        *,
        code: FlowErrorCode = FlowErrorCode.NODE_EXCEPTION,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        deliver: bool = False,
    ) -> None:
        """Fail `message` without invoking the node, as a failed last attempt would: the
        `node_failed` event, and the `FlowError` to Rookery when the flow asks for errors
        (or, with `deliver`, whatever it asks).

        For failures a runtime detects itself (a message that crashed every worker that took
        it, say); `text` replaces the standard message. `deliver` is for losses the caller
        could not otherwise learn of: its `fetch()` would wait for ever."""
        await self._fail(
            message, ctx, trace_id, exc, code, 0, 0.0, metadata, text=text, deliver=deliver
        )

    async def _routing_failed(
        self,
        message: Any,
        ctx: Any,
        trace_id: str | None,
        exc: Exception,
        attempt: int,
        latency: float,
    ) -> None:
        await self._record_error(ctx, "node_error", ERROR, exc, trace_id, attempt, latency, exc)
        await self._fail(
            message, ctx, trace_id, exc, FlowErrorCode.NODE_EXCEPTION, attempt, latency
        )

    async def note_stopped(self, ctx: Any) -> None:
        """Record that the runtime is stopping this node (`node_cancelled`).

        Called while the caller's task is being cancelled, so the recording is shielded."""
        if self._observed(DEBUG):
            import anyio

            with anyio.CancelScope(shield=True):
                await self._record("node_cancelled", ctx, None, 0, None, DEBUG)

    async def _note(self, ctx: Any, trace_id: str | None, event: str) -> None:
        if self._observed(INFO):
            await self._record(event, ctx, trace_id, 0, None, INFO)

    async def _deadline_skip(
        self, message: Message, ctx: Any, trace_id: str, deadline: float
    ) -> None:
        if self._observed(INFO):
            extra = {"deadline_s": deadline}
            await self._record("deadline_skip", ctx, trace_id, 0, None, INFO, extra)
        final = message
        if not isinstance(message.payload, FinalAnswer):
            final = message.model_copy(update={"payload": FinalAnswer(text=DEADLINE_EXCEEDED_TEXT)})
        await self._outbox.to_rookery(ctx, final)

    # -- attempts --------------------------------------------------------------------------------

    async def _invoke_with_timeout(self, message: Any, ctx: Any, timeout_s: float) -> Any:
        # A level-triggered cancel scope: user code that swallows the cancellation is cancelled
        # again at its next await, so a timeout is never lost. (A bare CancelScope measures
        # about a third cheaper than anyio.fail_after; see benchmarks/README.md.)
        import anyio

        with anyio.CancelScope(deadline=anyio.current_time() + timeout_s) as scope:
            return await self.node.invoke(message, ctx, registry=self.registry)
        # Only reached when the scope swallowed its own cancellation: the deadline passed.
        assert scope.cancelled_caught
        raise NodeTimeoutError(f"node {self.node.name!r} took longer than {timeout_s}s")

    async def _failed_attempt(
        self,
        message: Any,
        ctx: Any,
        trace_id: str | None,
        exc: Exception,
        attempt: int,
        latency: float,
    ) -> bool:
        """Record a failed attempt; True when it was the last one (the message failed)."""
        timed_out = isinstance(exc, TimeoutError)
        policy = self.node.policy
        last = attempt >= policy.max_retries
        # An attempt that will be retried is logged without its traceback: one traceback per
        # failed message (with node_failed), not one per expected retry.
        traceback = exc if last else None
        if timed_out:
            await self._record_error(
                ctx, "node_timeout", WARNING, exc, trace_id, attempt, latency, traceback
            )
        else:
            await self._record_error(
                ctx, "node_error", ERROR, exc, trace_id, attempt, latency, traceback
            )
        breaker = self.breaker
        if breaker is not None:
            await self._circuit_event(ctx, breaker.on_failure(time.monotonic()), trace_id, attempt)
        if last:
            code = FlowErrorCode.NODE_TIMEOUT if timed_out else FlowErrorCode.NODE_EXCEPTION
            await self._fail(message, ctx, trace_id, exc, code, attempt, latency)
            return True
        self._outbox.discard_attempt(ctx)
        delay = policy.backoff_delay(attempt + 1)
        if self._observed(INFO):
            extra = {"sleep_s": delay, "exception": describe_exception_repr(exc)}
            await self._record("node_retry", ctx, trace_id, attempt + 1, None, INFO, extra)
        await asyncio.sleep(delay)
        return False

    async def _record_error(
        self,
        ctx: Any,
        event: str,
        level: int,
        exc: BaseException,
        trace_id: str | None,
        attempt: int,
        latency: float,
        traceback: BaseException | None = None,
    ) -> None:
        if self._observed(level):
            extra = {"exception": describe_exception_repr(exc)}
            await self._record(event, ctx, trace_id, attempt, latency, level, extra, traceback)

    async def _fail(
        self,
        message: Any,
        ctx: Any,
        trace_id: str | None,
        exc: Exception,
        code: FlowErrorCode,
        attempt: int,
        latency: float,
        extra: dict[str, Any] | None = None,
        *,
        text: str | None = None,
        deliver: bool = False,
    ) -> None:
        node = self.node
        name = node.name
        metadata: dict[str, Any] = {"attempt": attempt, "latency_ms": latency, **(extra or {})}
        if text is not None:
            pass
        elif code is FlowErrorCode.NODE_TIMEOUT:
            timeout_s = node.policy.timeout_s
            metadata["timeout_s"] = timeout_s
            text = (
                f"Node '{name}' timed out after {timeout_s:.2f}s"
                if timeout_s is not None
                else describe_exception(exc)
            )
        elif code is FlowErrorCode.NODE_EXCEPTION:
            metadata["exception_repr"] = describe_exception_repr(exc)
            text = f"Node '{name}' raised {type(exc).__name__}: {describe_exception(exc)}"
        else:
            text = describe_exception(exc)
        error = FlowError.from_exception(
            trace_id=trace_id,
            node_name=name,
            node_id=node.node_id,
            exc=exc,
            code=code,
            message=text,
            metadata=metadata,
        )
        if self._observed(ERROR):
            payload = {"exception": describe_exception_repr(exc), "flow_error": error.to_payload()}
            await self._record("node_failed", ctx, trace_id, attempt, latency, ERROR, payload, exc)
        if (self._emit_errors or deliver) and trace_id is not None:
            await self._outbox.to_rookery(ctx, error)

    # -- circuit breaker -----------------------------------------------------------------------

    async def _circuit_gate(
        self, message: Any, ctx: Any, trace_id: str | None, attempt: int
    ) -> bool:
        """True when the open circuit rejected this message (already failed)."""
        breaker = self.breaker
        assert breaker is not None
        now = time.monotonic()
        verdict = breaker.before_attempt(now)
        if verdict is None:
            return False
        if verdict == "circuit_half_open":
            await self._circuit_event(ctx, verdict, trace_id, attempt)
            return False
        retry_in = breaker.retry_after(now)
        await self._circuit_event(ctx, verdict, trace_id, attempt, {"retry_after_s": retry_in})
        exc = RuntimeError(
            f"Node '{self.node.name}' circuit is open after {breaker.failures} consecutive "
            f"failures; not invoked (next probe in {retry_in:.2f}s). Fix the failing "
            "dependency or tune NodePolicy(circuit_breaker=...)"
        )
        await self._fail(
            message,
            ctx,
            trace_id,
            exc,
            FlowErrorCode.CIRCUIT_OPEN,
            attempt,
            0.0,
            {"retry_after_s": retry_in},
        )
        return True

    async def _circuit_event(
        self,
        ctx: Any,
        event: str | None,
        trace_id: str | None,
        attempt: int,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if event is None:
            return
        breaker = self.breaker
        assert breaker is not None
        level = WARNING if event in ("circuit_open", "circuit_rejected") else INFO
        if self._observed(level):
            payload = {"circuit_state": breaker.state, "consecutive_failures": breaker.failures}
            payload.update(extra or {})
            await self._record(event, ctx, trace_id, attempt, None, level, payload)

    # -- result routing (controller loops, Rookery diversions) ---------------------------------

    async def _deliver(self, message: Any, ctx: Any, result: Any) -> None:
        if self.warn_non_message and not isinstance(result, Message):
            warnings.warn(
                f"Node '{self.node.name}' is registered for Message -> Message outputs but "
                f"returned {type(result).__name__}; return a Message to keep the envelope",
                RuntimeWarning,
                stacklevel=2,
            )
        if isinstance(result, Message):
            payload = result.payload
            if isinstance(payload, WM):
                await self._controller_step(message, ctx, result, payload)
                return
            if isinstance(payload, FinalAnswer):
                await self._outbox.to_rookery(ctx, result)
                return
        await self._emit(ctx, result)

    async def _controller_step(self, message: Any, ctx: Any, result: Message, wm: WM) -> None:
        deadline = result.deadline_s
        if deadline is not None and time.time() > deadline:
            await self._final(ctx, result, DEADLINE_EXCEEDED_TEXT)
            return
        if wm.budget_tokens is not None and wm.tokens_used >= wm.budget_tokens:
            await self._final(ctx, result, TOKEN_BUDGET_EXCEEDED_TEXT)
            return
        hops = wm.hops
        if isinstance(message, Message) and isinstance(message.payload, WM):
            previous = message.payload.hops
            if hops <= previous:
                hops = previous + 1
        if hops != wm.hops:
            wm = wm.model_copy(update={"hops": hops})
            result = result.model_copy(update={"payload": wm})
        if wm.budget_hops is not None and hops >= wm.budget_hops:
            await self._final(ctx, result, BUDGET_EXCEEDED_TEXT)
            return
        if wm.budget_hops is None and wm.budget_tokens is None:
            # Unbounded loops stream every hop to the caller; Rookery backpressure paces them.
            await self._outbox.to_rookery(ctx, result.model_copy(deep=True))
        await ctx.emit(result, to=self.node)

    async def _final(self, ctx: Any, result: Message, text: str) -> None:
        final = result.model_copy(update={"payload": FinalAnswer(text=text)})
        await self._outbox.to_rookery(ctx, final)
