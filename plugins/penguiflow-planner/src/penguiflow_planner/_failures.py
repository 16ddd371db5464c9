"""Telling a real cancellation from a `CancelledError` that a tool or a client raised itself.

A tool may raise `asyncio.CancelledError` without anyone cancelling the run: it awaited a
future or a task that someone else cancelled, or it raised one by hand. Letting that one
propagate would end `run()` with a cancellation nobody asked for, so the planner treats it as
the tool's failure. A cancellation of the run itself (the caller cancelled its task, or the
deadline's cancel scope, or an enclosing one, was cancelled) always propagates.
"""

from __future__ import annotations

import asyncio
import math

import anyio

from penguiflow.errors import PenguiFlowError, describe_exception

__all__ = ["UnusableReplyError", "describe_failure", "is_failure"]


def _cancelling_now() -> bool:
    """Whether the current task is being cancelled, by its caller or by a cancel scope.

    asyncio counts the cancellation requests a task has not yet absorbed (`cancelling()`),
    and anyio's cancel scopes cancel through them on asyncio; an effective deadline of
    minus infinity is anyio's own word that an enclosing scope was cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return True
    return anyio.current_effective_deadline() == -math.inf


def is_failure(exc: BaseException) -> bool:
    """Whether `exc`, raised by a tool or a model call, is a failure to report (an observation,
    a failed model call), rather than something that must propagate: a cancellation of the
    run, `KeyboardInterrupt`, `SystemExit`."""
    if isinstance(exc, Exception):
        return True
    if isinstance(exc, asyncio.CancelledError):
        return not _cancelling_now()
    return False


def describe_failure(exc: BaseException) -> str:
    """`Type: text` for a failure's report (the type alone when it has no text of its own)."""
    name = type(exc).__name__
    text = describe_exception(exc)
    return name if text == name else f"{name}: {text}"


class UnusableReplyError(PenguiFlowError, ValueError):
    """A model's reply to a side request (a critique, a summary) could not be used; the
    caller falls back (the answer stands, the rule-based summary is used)."""
