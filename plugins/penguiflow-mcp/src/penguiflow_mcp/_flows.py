"""Which running flow a connector is used from, so that a flow's stop closes only the
sessions that flow used.

The startup hook runs in the context of the code that calls `flow.run()`, before the flow's
worker tasks exist; a context variable set there is copied into every one of them (and into
the tasks they start), so a connector called from a node finds its flow here. The variable
holds a weak reference: remembering a flow must not keep it alive.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import Any

__all__ = ["current_flow", "entered", "left"]

_flow: ContextVar[weakref.ref[Any] | None] = ContextVar("penguiflow_mcp_flow", default=None)


def entered(flow: Any) -> None:
    """`flow` is starting here: the tasks it starts from now on belong to it."""
    try:
        _flow.set(weakref.ref(flow))
    except TypeError:  # a flow that cannot be weakly referenced is not tracked
        _flow.set(None)


def left(flow: Any) -> None:
    """`flow` stopped: code running here no longer belongs to it."""
    if current_flow() is flow:
        _flow.set(None)


def current_flow() -> Any | None:
    """The flow the running code belongs to, or None (outside any flow)."""
    ref = _flow.get()
    return ref() if ref is not None else None
