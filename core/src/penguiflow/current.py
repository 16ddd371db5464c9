"""What the running code is part of: its flow, and the `ctx` of the node or tool running it.

Code a node or a tool calls without passing `ctx` along (a connector's tool function, a
library helper) can find out here which flow's work it is doing and which context to report
to: a connector streams a remote tool's progress with `current_context().emit_chunk(...)`, or
closes the sessions a flow used when that flow stops.

Both are context variables. A flow sets its own for the worker tasks it starts, and each
worker sets its node's `ctx`; the tasks they make inherit both. The code that called
`flow.run()` is not the flow's work and sees neither. The planner sets its tool context
around each tool call (`using_context`); a runtime driver that runs nodes in its own workers
does the same.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

__all__ = ["current_context", "current_flow", "flow_scope", "using_context"]

_flow: ContextVar[weakref.ref[Any] | None] = ContextVar("penguiflow_current_flow", default=None)
_context: ContextVar[Any | None] = ContextVar("penguiflow_current_context", default=None)


def current_flow() -> Any | None:
    """The running flow whose work the current code is, or None outside any flow.

    The flow is held weakly: asking never keeps a flow alive."""
    ref = _flow.get()
    return ref() if ref is not None else None


def current_context() -> Any | None:
    """The `ctx` of the node or tool whose code is running (a node's `Context`, the planner's
    tool context during a tool call), or None when no node or tool is running."""
    return _context.get()


class flow_scope:  # lower case: it is used like a function, `with flow_scope(flow):`
    """Tasks started inside this block do `flow`'s work (`current_flow()` in them is `flow`);
    the code around the block is unaffected. For runtimes starting a flow's workers.

    Only a weak reference is kept, here and in those tasks."""

    __slots__ = ("_ref", "_token")

    def __init__(self, flow: Any) -> None:
        try:
            self._ref: weakref.ref[Any] | None = weakref.ref(flow)
        except TypeError:  # a flow that cannot be weakly referenced is simply not tracked
            self._ref = None
        self._token: Token[weakref.ref[Any] | None] | None = None

    def __enter__(self) -> None:
        self._token = _flow.set(self._ref)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _flow.reset(self._token)
            self._token = None


@contextmanager
def using_context(ctx: Any) -> Iterator[None]:
    """Code run inside this block (and tasks it starts) sees `ctx` as `current_context()`.
    For runtimes and the planner, around a node's or a tool's invocation."""
    token = _context.set(ctx)
    try:
        yield
    finally:
        _context.reset(token)
