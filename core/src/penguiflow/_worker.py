"""The in-process node worker: one task per node that takes messages off its incoming edges
and hands each to the node engine.

This is the per-message hot path of the local runtime; what happens to a message is the
engine's business (`_engine.py`). The worker adds only the local runtime's part: reading the
edge queues, the per-trace accounting, and supervision: an exception from the engine's own code
fails that one message (`FlowErrorCode.INTERNAL_ERROR`, logged with its traceback) and the
worker goes on with the next.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ._engine import Lane, NodeEngine
from .current import using_context
from .tracecontext import using_span

if TYPE_CHECKING:
    from ._context import Context
    from ._traces import TraceTable
    from .node import Node

__all__ = ["NodeWorker"]


class NodeWorker:
    """Runs one node of one in-process flow."""

    __slots__ = ("ctx", "engine", "lane", "traces")

    def __init__(self, engine: NodeEngine, ctx: Context, traces: TraceTable) -> None:
        self.engine = engine
        self.ctx = ctx
        self.traces = traces
        self.lane = Lane()

    @property
    def node(self) -> Node:
        return self.engine.node

    def interrupt(self, trace_id: str) -> None:
        """Cancel the running invocation if it belongs to `trace_id`."""
        self.lane.interrupt(trace_id)

    async def run(self) -> None:
        # This task is the node's alone: what the node calls finds its ctx with
        # penguiflow.current.current_context(). The task was created with a copy of the
        # context run() was called in: a span current there (a web request's) belongs to that
        # caller, not to every message this worker will handle, so it is cleared.
        with using_context(self.ctx), using_span(None):
            await self._serve()

    async def _serve(self) -> None:
        ctx = self.ctx
        engine = self.engine
        process = engine.process
        finalize = self.traces.finalize
        lane = self.lane
        lane.task = asyncio.current_task()
        incoming = list(ctx._incoming.values())
        single = incoming[0].queue if len(incoming) == 1 else None
        try:
            while True:
                if single is not None and not ctx._buffer:
                    message = single.get_nowait() if single.qsize() else await single.get()
                else:
                    message = await ctx.fetch()
                trace_id = getattr(message, "trace_id", None)
                try:
                    await process(message, ctx, lane, trace_id)
                except Exception as exc:
                    await engine.fail_internal(message, ctx, trace_id, exc)
                finally:
                    if trace_id is not None:
                        finalize(trace_id)
        except asyncio.CancelledError:
            await engine.note_stopped(ctx)
            raise
