"""Running one tool: its arguments validated, its node's policy applied (timeout, retries).

The timeout is an anyio cancel scope, so it nests under the run's deadline scope: whichever
ends first cancels the call, and the run's deadline is never mistaken for the tool's timeout.
A `CancelledError` the tool raised of its own (nobody cancelled the run) is the tool's
failure, like any exception; a cancellation of the run propagates (`_failures`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import anyio
from pydantic import BaseModel

from penguiflow.catalog import NodeSpec
from penguiflow.current import using_context
from penguiflow.errors import InvalidTypeError, PenguiFlowError, describe_exception
from penguiflow.joins import BranchOutcome
from penguiflow.node import NodePolicy
from penguiflow.runtime import CircuitBreaker

from ._failures import is_failure

__all__ = ["PauseRequested", "run_tool"]


class PauseRequested(PenguiFlowError):
    """Raised by `ctx.pause(reason, payload)` inside a tool: the run stops and waits for a
    human. Let it propagate out of the tool: the planner turns it into a `PlannerPause`
    (the tool does not continue after the resume; the model plans again, with the human's
    input)."""

    def __init__(self, reason: str, payload: Mapping[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payload = dict(payload)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "payload") and isinstance(value.payload, BaseModel):
        return value.payload.model_dump(mode="json")
    return value


async def _invoke(spec: NodeSpec, args: dict[str, Any], ctx: Any) -> Any:
    # A tool function that takes no ctx (a connector's) still finds it: penguiflow.current.
    with using_context(ctx):
        return await _invoke_in_context(spec, args, ctx)


async def _invoke_in_context(spec: NodeSpec, args: dict[str, Any], ctx: Any) -> Any:
    if spec.node is not None:
        func = spec.node.func
        argument: Any = spec.args_model.model_validate(args) if spec.args_model else args
        result = await func(argument, ctx)
        if spec.out_model is not None and spec.node.policy.validate != "none":
            # The output must be what the catalog promises the model (PenguiFlow validates
            # it with the output model); a node whose policy turns validation off opts out.
            payload = result.model_dump() if isinstance(result, BaseModel) else result
            result = spec.out_model.model_validate(payload)
        return result
    if spec.call is not None:
        return await spec.call(args)
    raise InvalidTypeError(f"tool {spec.name!r} has neither a node nor a call function")


class _ToolTimedOut(PenguiFlowError):
    """The tool's own `timeout_s` ran out (told apart from a `TimeoutError` the tool raised)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"timed out after {timeout_s:g}s")


async def _attempt(spec: NodeSpec, args: dict[str, Any], ctx: Any, timeout_s: float | None) -> Any:
    if timeout_s is None:
        return await _invoke(spec, args, ctx)
    with anyio.move_on_after(timeout_s):
        return await _invoke(spec, args, ctx)
    # Only this scope's own timeout gets here: a cancellation from an enclosing scope (the
    # run's deadline, the caller) is not caught by it and propagates.
    raise _ToolTimedOut(timeout_s)


def _backoff_delay(policy: NodePolicy, retry: int) -> float | None:
    """Seconds to sleep before retry number `retry`, or None when there is no retry to wait
    for: the kernel's `backoff_delay` turns an uncapped delay that outgrows a float into
    infinity (and a policy edited after its checks could make it raise). Sleeping for ever
    would hold the run until its deadline, or for ever without one; the model is better
    served by the failure as it stands."""
    try:
        delay = float(policy.backoff_delay(retry))
        return delay if math.isfinite(delay) else None
    except Exception:  # a policy mutated past its checks: no retry rather than a crash
        return None


def _failed(
    spec: NodeSpec, args: dict[str, Any], error: BaseException, started: float
) -> BranchOutcome:
    # The observation the model sees. describe_exception, because a tool's exception must
    # not be able to break the run, even one whose __str__ raises.
    return BranchOutcome(
        tool=spec.name,
        args=args,
        ok=False,
        error=describe_exception(error),
        error_type="TimeoutError" if isinstance(error, _ToolTimedOut) else type(error).__name__,
        duration_s=time.perf_counter() - started,
    )


async def run_tool(
    spec: NodeSpec,
    args: dict[str, Any],
    ctx: Any,
    breaker: CircuitBreaker | None = None,
) -> BranchOutcome:
    """Call the tool under its node's policy (timeout, retries, output validation, and the
    circuit `breaker` the planner keeps for it); failures become a failed outcome, never an
    exception (except a pause, which stops the run, and the run's cancellation, which is never
    swallowed). Retries stop early when the backoff before the next one would be infinite."""
    policy = spec.node.policy if spec.node is not None else None
    attempts = 1 + (policy.max_retries if policy is not None else 0)
    timeout_s = policy.timeout_s if policy is not None else None
    started = time.perf_counter()
    error: BaseException | None = None
    for attempt in range(attempts):
        if breaker is not None and breaker.before_attempt(time.monotonic()) == "circuit_rejected":
            wait = breaker.retry_after(time.monotonic())
            return BranchOutcome(
                tool=spec.name,
                args=args,
                ok=False,
                error=f"circuit open after {breaker.failures} consecutive failures; not called "
                f"(next try in {wait:.1f}s), choose another tool or answer",
                error_type="CircuitOpen",
            )
        try:
            result = await _attempt(spec, args, ctx, timeout_s)
            output = _jsonable(result)
        except PauseRequested:
            raise
        except BaseException as exc:
            if not is_failure(exc):
                raise
            error = exc
            if breaker is not None:
                breaker.on_failure(time.monotonic())
            if policy is not None and attempt + 1 < attempts:
                delay = _backoff_delay(policy, attempt + 1)
                if delay is None:
                    break
                await anyio.sleep(delay)
            continue
        if breaker is not None:
            breaker.on_success()
        return BranchOutcome(
            tool=spec.name,
            args=args,
            ok=True,
            output=output,
            duration_s=time.perf_counter() - started,
        )
    assert error is not None
    return _failed(spec, args, error, started)
