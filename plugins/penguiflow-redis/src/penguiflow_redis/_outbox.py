"""The node engine's view of a redis worker: results become stream outputs of the message,
events carry what one worker process knows (see `penguiflow.runtime.Outbox`)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from penguiflow.metrics import FlowEvent

if TYPE_CHECKING:
    from ._context import WorkerContext
    from ._worker import WorkerPool

__all__ = ["RedisOutbox"]

logger = logging.getLogger("penguiflow_redis.worker")


class RedisOutbox:
    """Implements `Outbox` for a `WorkerPool`."""

    __slots__ = ("_pool", "observed")

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self.observed = pool.events.observed

    def is_cancelled(self, trace_id: str) -> bool:
        return trace_id in self._pool.cancelled

    async def emit(self, ctx: WorkerContext, result: Any) -> None:
        ctx.emit_nowait(result)

    async def to_rookery(self, ctx: WorkerContext, item: Any) -> None:
        ctx.to_reply(item)

    def discard_attempt(self, ctx: WorkerContext) -> None:
        # A failed attempt's outputs were never written (nor its chained outputs run): the
        # retry starts from nothing.
        ctx.outputs.clear()
        ctx.chained.clear()
        # Retries are worth an operator's attention on a worker (its node_retry event is INFO).
        logger.warning(
            "node %s failed on trace %s (worker %s); retrying it",
            ctx.owner.name,
            ctx.trace_id,
            self._pool.consumer,
        )

    async def record(
        self,
        event_type: str,
        ctx: WorkerContext,
        trace_id: str | None,
        attempt: int,
        latency_ms: float | None,
        level: int,
        extra: dict[str, Any] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        pool = self._pool
        node = ctx.owner
        event = FlowEvent(
            event_type=event_type,
            ts=time.time(),
            node_name=node.name,
            node_id=node.node_id,
            trace_id=trace_id,
            attempt=attempt,
            latency_ms=latency_ms,
            queue_depth_in=ctx.queue_depth_in(),
            queue_depth_out=ctx.queue_depth_out(),
            outgoing_edges=ctx.outgoing_count(),
            queue_maxsize=pool.definition.queue_maxsize,
            # How many messages of the trace are pending anywhere is not known in one worker.
            trace_pending=None,
            trace_inflight=pool.inflight(trace_id) if trace_id is not None else 0,
            trace_cancelled=trace_id is not None and trace_id in pool.cancelled,
            extra={**(extra or {}), "worker": pool.consumer},
        )
        await pool.events.publish(event, level, exc)
