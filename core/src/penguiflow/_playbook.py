"""`call_playbook`: run a subflow for one message and return its first result."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from ._engine import TraceCancelled
from .types import Message

if TYPE_CHECKING:
    from ._definition import Flow
    from .registry import ModelRegistry

__all__ = ["PlaybookFactory", "call_playbook"]

PlaybookFactory: TypeAlias = "Callable[[], tuple[Flow, ModelRegistry | None]]"


class _ParentRuntime(Protocol):
    """The calling flow, whose trace cancellation the subflow mirrors."""

    def ensure_trace_event(self, trace_id: str) -> asyncio.Event: ...


async def call_playbook(
    playbook: PlaybookFactory,
    parent_msg: Message,
    timeout: float | None = None,
    *,
    runtime: _ParentRuntime | None = None,
) -> Any:
    """Run `playbook()`'s flow on `parent_msg`; mirror the parent trace's cancellation."""
    flow, registry = playbook()
    flow.run(registry=registry)
    trace_id = getattr(parent_msg, "trace_id", None)
    watcher: asyncio.Task[None] | None = None
    try:
        if runtime is not None and trace_id is not None:
            parent_cancelled = runtime.ensure_trace_event(trace_id)
            if parent_cancelled.is_set():
                raise TraceCancelled(trace_id)
            watcher = asyncio.get_running_loop().create_task(
                _mirror_cancel(parent_cancelled, flow, trace_id),
                name=f"penguiflow:playbook-cancel:{trace_id}",
            )
        try:
            await flow.emit(parent_msg)
            fetched = flow.fetch()
            result = await (asyncio.wait_for(fetched, timeout) if timeout else fetched)
        except (TraceCancelled, asyncio.CancelledError):
            if trace_id is not None:
                with contextlib.suppress(Exception):
                    await flow.cancel(trace_id)
            raise
        return result.payload if isinstance(result, Message) else result
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await asyncio.shield(flow.stop())


async def _mirror_cancel(event: asyncio.Event, flow: Flow, trace_id: str) -> None:
    await event.wait()
    with contextlib.suppress(Exception):
        await flow.cancel(trace_id)
