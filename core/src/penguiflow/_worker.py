"""The node worker: one task per node that fetches, invokes with retries, and routes results.

This is the per-message hot path. User code runs *inside* the worker task (no Task per
invocation); trace cancellation and timeouts cancel the worker task itself and are turned back
into `TraceCancelled` / `TimeoutError` with `Task.uncancel()`. Events are built only when a
listener exists (`PenguiFlow._observed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._circuit import CircuitBreaker
from .errors import FlowError, FlowErrorCode
from .types import WM, FinalAnswer, Message

if TYPE_CHECKING:
    from ._context import Context
    from ._flow import PenguiFlow
    from .node import Node

__all__ = [
    "BUDGET_EXCEEDED_TEXT",
    "DEADLINE_EXCEEDED_TEXT",
    "TOKEN_BUDGET_EXCEEDED_TEXT",
    "NodeWorker",
    "TraceCancelled",
    "current_trace",
]

BUDGET_EXCEEDED_TEXT = "Hop budget exhausted"
DEADLINE_EXCEEDED_TEXT = "Deadline exceeded"
TOKEN_BUDGET_EXCEEDED_TEXT = "Token budget exhausted"

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR

#: The trace a worker is processing; read when a raw (untraced) result enters Rookery.
current_trace: ContextVar[str | None] = ContextVar("penguiflow_current_trace", default=None)


class TraceCancelled(Exception):
    """The trace was cancelled while this code was working on it."""

    def __init__(self, trace_id: str | None) -> None:
        super().__init__(f"trace cancelled: {trace_id}")
        self.trace_id = trace_id


class _RoutingError(Exception):
    """A node's result could not be delivered; wraps the cause so it is not retried."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class NodeWorker:
    """Runs one node of one flow: the loop of §1.5 of the compatibility spec."""

    __slots__ = (
        "breaker",
        "ctx",
        "flow",
        "invoking",
        "node",
        "task",
        "trace_cancel_requested",
        "warn_non_message",
    )

    def __init__(self, flow: PenguiFlow, node: Node, ctx: Context) -> None:
        self.flow = flow
        self.node = node
        self.ctx = ctx
        self.task: asyncio.Task[None] | None = None
        #: Trace whose user code is running right now (the window `cancel()` may interrupt).
        self.invoking: str | None = None
        self.trace_cancel_requested = False
        policy = node.policy
        self.breaker = CircuitBreaker(policy.circuit_breaker) if policy.circuit_breaker else None
        registry = flow.registry
        self.warn_non_message = False
        if registry is not None and node.name is not None and registry.has(node.name):
            out_model = registry.models(node.name)[1]
            self.warn_non_message = isinstance(out_model, type) and issubclass(out_model, Message)

    # -- cancellation entry point (called by PenguiFlow.cancel) -------------------------------

    def interrupt(self, trace_id: str) -> None:
        """Cancel the running invocation if it belongs to `trace_id`."""
        if self.invoking != trace_id or self.trace_cancel_requested:
            return
        self.trace_cancel_requested = True
        task = self.task
        # Code that cancels its own trace keeps running to its next return; its result is
        # then discarded. Cancelling our own task would land outside the invocation window.
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        flow = self.flow
        traces = flow._traces
        incoming = list(ctx._incoming.values())
        single = incoming[0].queue if len(incoming) == 1 else None
        try:
            while True:
                if single is not None and not ctx._buffer:
                    message = single.get_nowait() if single.qsize() else await single.get()
                else:
                    message = await ctx.fetch()
                trace_id = getattr(message, "trace_id", None)
                if trace_id is None:
                    await self._reliably(message, None)
                    continue
                # Inlined on purpose: this runs once per message per node.
                try:
                    if isinstance(message, Message):
                        deadline = message.deadline_s
                        if deadline is not None and time.time() > deadline:
                            await self._deadline_skip(message, trace_id, deadline)
                            continue
                    state = traces.states.get(trace_id)
                    if state is not None and state.cancelled:
                        await self._note(trace_id, "trace_cancel_drop")
                        continue
                    token = current_trace.set(trace_id)
                    try:
                        await self._reliably(message, trace_id)
                    except TraceCancelled:
                        await self._note(trace_id, "node_trace_cancelled")
                    finally:
                        current_trace.reset(token)
                finally:
                    traces.finalize(trace_id)
        except asyncio.CancelledError:
            if flow._observed(DEBUG):
                await flow._record("node_cancelled", ctx, None, 0, None, DEBUG)
            raise

    async def _note(self, trace_id: str, event: str) -> None:
        if self.flow._observed(INFO):
            await self.flow._record(event, self.ctx, trace_id, 0, None, INFO)

    async def _deadline_skip(self, message: Message, trace_id: str, deadline: float) -> None:
        flow = self.flow
        if flow._observed(INFO):
            extra = {"deadline_s": deadline}
            await flow._record("deadline_skip", self.ctx, trace_id, 0, None, INFO, extra)
        final = message
        if not isinstance(message.payload, FinalAnswer):
            final = message.model_copy(update={"payload": FinalAnswer(text=DEADLINE_EXCEEDED_TEXT)})
        await flow._to_rookery(self.ctx, final)

    # -- reliability loop ----------------------------------------------------------------------

    async def _reliably(self, message: Any, trace_id: str | None) -> None:
        flow = self.flow
        ctx = self.ctx
        node = self.node
        policy = node.policy
        timeout_s = policy.timeout_s
        direct = flow.registry is None or policy.validate == "none"
        func = node.func
        attempt = 0
        while True:
            if trace_id is not None and flow._traces.is_cancelled(trace_id):
                raise TraceCancelled(trace_id)
            breaker = self.breaker
            if breaker is not None and await self._circuit_gate(message, trace_id, attempt):
                return
            if flow._observed(DEBUG):
                await flow._record("node_start", ctx, trace_id, attempt, 0.0, DEBUG)
            started = time.perf_counter()
            try:
                if trace_id is not None:
                    self.invoking = trace_id
                try:
                    if timeout_s is None:
                        if direct:
                            result = await func(message, ctx)
                        else:
                            result = await node.invoke(message, ctx, registry=flow.registry)
                    else:
                        async with asyncio.timeout(timeout_s):
                            result = await node.invoke(message, ctx, registry=flow.registry)
                except asyncio.CancelledError:
                    if self._take_trace_cancel():
                        raise TraceCancelled(trace_id) from None
                    raise
                finally:
                    self.invoking = None
                if self.trace_cancel_requested and self._take_trace_cancel():
                    raise TraceCancelled(trace_id)
                if breaker is not None:
                    await self._circuit_event(breaker.on_success(), trace_id, attempt)
                if result is not None:
                    payload = getattr(result, "payload", None)
                    if self.warn_non_message or isinstance(payload, WM | FinalAnswer):
                        await self._deliver(message, result)
                    else:
                        for floe in ctx._outgoing.values():
                            await flow._send(floe, result)
            except TraceCancelled:
                raise
            except _RoutingError as routing:
                # Re-invoking user code cannot fix a wrong target, and a partial fan-out
                # would be sent twice: routing failures go straight to failure handling.
                exc = routing.cause
                latency = (time.perf_counter() - started) * 1000
                await self._record_error("node_error", ERROR, exc, trace_id, attempt, latency)
                await self._fail(
                    message, trace_id, exc, FlowErrorCode.NODE_EXCEPTION, attempt, latency
                )
                return
            except Exception as exc:
                latency = (time.perf_counter() - started) * 1000
                timed_out = isinstance(exc, TimeoutError)
                if timed_out:
                    await self._record_error(
                        "node_timeout", WARNING, exc, trace_id, attempt, latency
                    )
                else:
                    await self._record_error("node_error", ERROR, exc, trace_id, attempt, latency)
                if breaker is not None:
                    await self._circuit_event(
                        breaker.on_failure(time.monotonic()), trace_id, attempt
                    )
                code = FlowErrorCode.NODE_TIMEOUT if timed_out else FlowErrorCode.NODE_EXCEPTION
                if attempt >= policy.max_retries:
                    await self._fail(message, trace_id, exc, code, attempt, latency)
                    return
                attempt += 1
                delay = policy.backoff_delay(attempt)
                if flow._observed(INFO):
                    extra = {"sleep_s": delay, "exception": repr(exc)}
                    await flow._record("node_retry", ctx, trace_id, attempt, None, INFO, extra)
                await asyncio.sleep(delay)
                continue
            if flow._observed(INFO):
                latency = (time.perf_counter() - started) * 1000
                await flow._record("node_success", ctx, trace_id, attempt, latency, INFO)
            return

    def _take_trace_cancel(self) -> bool:
        """Consume a pending trace-cancel request; True unless the task is also being stopped."""
        if not self.trace_cancel_requested:
            return False
        self.trace_cancel_requested = False
        task = self.task
        if task is None or task is not asyncio.current_task():
            return True
        assert task is not None
        if task.cancelling():
            task.uncancel()
        return task.cancelling() == 0

    async def _record_error(
        self,
        event: str,
        level: int,
        exc: BaseException,
        trace_id: str | None,
        attempt: int,
        latency: float,
    ) -> None:
        flow = self.flow
        if flow._observed(level):
            extra = {"exception": repr(exc)}
            await flow._record(event, self.ctx, trace_id, attempt, latency, level, extra, exc)

    async def _fail(
        self,
        message: Any,
        trace_id: str | None,
        exc: Exception,
        code: FlowErrorCode,
        attempt: int,
        latency: float,
    ) -> None:
        node = self.node
        name = node.name
        metadata: dict[str, Any] = {"attempt": attempt, "latency_ms": latency}
        if code is FlowErrorCode.NODE_TIMEOUT:
            timeout_s = node.policy.timeout_s
            metadata["timeout_s"] = timeout_s
            text = (
                f"Node '{name}' timed out after {timeout_s:.2f}s"
                if timeout_s is not None
                else (str(exc) or type(exc).__name__)
            )
        elif code is FlowErrorCode.CIRCUIT_OPEN:
            text = str(exc)
        else:
            metadata["exception_repr"] = repr(exc)
            text = f"Node '{name}' raised {type(exc).__name__}: {exc}"
        error = FlowError.from_exception(
            trace_id=trace_id,
            node_name=name,
            node_id=node.node_id,
            exc=exc,
            code=code,
            message=text,
            metadata=metadata,
        )
        flow = self.flow
        if flow._observed(ERROR):
            extra = {"exception": repr(exc), "flow_error": error.to_payload()}
            await flow._record(
                "node_failed", self.ctx, trace_id, attempt, latency, ERROR, extra, exc
            )
        if flow._emit_errors_to_rookery and trace_id is not None:
            await flow._to_rookery(self.ctx, error)

    # -- circuit breaker -----------------------------------------------------------------------

    async def _circuit_gate(self, message: Any, trace_id: str | None, attempt: int) -> bool:
        """True when the open circuit rejected this message (already failed)."""
        breaker = self.breaker
        assert breaker is not None
        now = time.monotonic()
        verdict = breaker.before_attempt(now)
        if verdict is None:
            return False
        if verdict == "circuit_half_open":
            await self._circuit_event(verdict, trace_id, attempt)
            return False
        retry_in = breaker.retry_after(now)
        await self._circuit_event(verdict, trace_id, attempt, {"retry_after_s": retry_in})
        exc = RuntimeError(
            f"Node '{self.node.name}' circuit is open after {breaker.failures} consecutive "
            f"failures; not invoked (next probe in {retry_in:.2f}s). Fix the failing "
            "dependency or tune NodePolicy(circuit_breaker=...)"
        )
        await self._fail(message, trace_id, exc, FlowErrorCode.CIRCUIT_OPEN, attempt, 0.0)
        return True

    async def _circuit_event(
        self,
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
        flow = self.flow
        if flow._observed(level):
            payload = {"circuit_state": breaker.state, "consecutive_failures": breaker.failures}
            payload.update(extra or {})
            await flow._record(event, self.ctx, trace_id, attempt, None, level, payload)

    # -- result routing (controller loops, Rookery diversions) ---------------------------------

    async def _deliver(self, message: Any, result: Any) -> None:
        try:
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
                    await self._controller_step(message, result, payload)
                    return
                if isinstance(payload, FinalAnswer):
                    await self.flow._to_rookery(self.ctx, result)
                    return
            await self.ctx.emit(result)
        except (KeyError, TypeError, ValueError) as exc:
            raise _RoutingError(exc) from exc

    async def _controller_step(self, message: Any, result: Message, wm: WM) -> None:
        flow = self.flow
        deadline = result.deadline_s
        if deadline is not None and time.time() > deadline:
            await self._final(result, DEADLINE_EXCEEDED_TEXT)
            return
        if wm.budget_tokens is not None and wm.tokens_used >= wm.budget_tokens:
            await self._final(result, TOKEN_BUDGET_EXCEEDED_TEXT)
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
            await self._final(result, BUDGET_EXCEEDED_TEXT)
            return
        if wm.budget_hops is None and wm.budget_tokens is None:
            # Unbounded loops stream every hop to the caller; Rookery backpressure paces them.
            await flow._to_rookery(self.ctx, result.model_copy(deep=True))
        await self.ctx.emit(result, to=self.node)

    async def _final(self, result: Message, text: str) -> None:
        final = result.model_copy(update={"payload": FinalAnswer(text=text)})
        await self.flow._to_rookery(self.ctx, final)
