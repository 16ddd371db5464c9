"""Which running flow the code calling a connector belongs to, so that stopping a flow
closes only the MCP sessions that flow used.

`penguiflow_flow_startup` runs in the code that calls `flow.run()`, before the flow makes its
worker tasks; a context variable set there is copied into each of them (and into the tasks
they make), so a connector called from a node finds its flow here. The task that called
`run()` is remembered as well: it keeps the variable too, yet what it calls afterwards is not
the flow's work. The flow is held weakly, so remembering it never keeps it alive.
"""

from __future__ import annotations

import asyncio
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["current_flow", "entered", "left"]


@dataclass(frozen=True, slots=True)
class _Mark:
    flow: weakref.ref[Any]
    #: the task that started the flow (None when `run()` was called outside a task)
    starter: asyncio.Task[Any] | None


_mark: ContextVar[_Mark | None] = ContextVar("penguiflow_mcp_flow", default=None)


def _task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def entered(flow: Any) -> None:
    """`flow` starts here: the tasks made from now on in this context do its work."""
    try:
        ref = weakref.ref(flow)
    except TypeError:  # a flow that cannot be weakly referenced is not tracked
        _mark.set(None)
        return
    _mark.set(_Mark(ref, _task()))


def left(flow: Any) -> None:
    """`flow` stopped: code running in this context no longer belongs to it."""
    mark = _mark.get()
    if mark is not None and mark.flow() is flow:
        _mark.set(None)


def current_flow() -> Any | None:
    """The running flow whose work the current code is, or None (outside any flow)."""
    mark = _mark.get()
    if mark is None:
        return None
    task = _task()
    if task is not None and task is mark.starter:
        return None
    return mark.flow()
