"""Entries no worker can finish: moved to their shard's dead-letter stream.

An entry whose workers kept dying while processing it (`max_deliveries` times), or that no
worker can decode, is kept in the capped dead-letter stream of its shard (`...:dead`) and taken
off its node's stream, in one transaction with a `FlowError` for its client and the deletion of
its trace's join buckets; the client's fetch hears of it instead of waiting for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

from penguiflow import observability
from penguiflow.errors import FlowErrorCode, UsageError, describe_exception

from ._context import WorkerContext
from ._stats import dead_letter_event
from ._streams import GROUP

if TYPE_CHECKING:
    from ._worker import WorkerPool
    from ._worker_shard import WorkerShard

__all__ = ["give_up", "undecodable"]

logger = logging.getLogger("penguiflow_redis.worker")

#: how many dead letters a shard keeps (the oldest go first)
DEAD_LETTERS_KEPT = 10_000


async def give_up(
    pool: WorkerPool,
    shard: WorkerShard,
    name: str,
    stream: str,
    entry_id: str,
    fields: dict[str, str],
    deaths: int,
) -> None:
    """An entry whose worker died holding it `max_deliveries` times (a crash, kill or
    out-of-memory each time) goes to the dead letters instead of killing another one."""
    text = (
        f"Node '{name}' did not finish this message: {deaths} worker(s) died while "
        "processing it (a crash, kill -9 or out-of-memory?). It was moved to "
        f"{shard.keys.dead_letters}; fix the node, then add the entry back to the node's "
        "stream, or raise max_deliveries"
    )
    metadata = {"deaths": deaths, "dead_letters": shard.keys.dead_letters}
    await dead_letter(pool, shard, name, stream, entry_id, fields, text, metadata)


async def undecodable(
    pool: WorkerPool,
    shard: WorkerShard,
    name: str,
    stream: str,
    entry_id: str,
    fields: dict[str, str],
    exc: Exception,
) -> None:
    text = (
        f"a message for node '{name}' cannot be decoded by worker {pool.consumer}: "
        f"{describe_exception(exc)}. It was moved to {shard.keys.dead_letters}. Build the "
        "client and the workers from the same code, declaring the same payload_types"
    )
    await dead_letter(pool, shard, name, stream, entry_id, fields, text, {"decode_error": True})


async def dead_letter(
    pool: WorkerPool,
    shard: WorkerShard,
    name: str,
    stream: str,
    entry_id: str,
    fields: dict[str, str],
    text: str,
    metadata: dict[str, Any],
) -> None:
    """Move the entry to the dead letters; its client hears of it as a `FlowError` for
    its trace (whatever `emit_errors_to_rookery` says: else its fetch would wait for
    ever), and the trace's join buckets go with it."""
    logger.error("%s (entry %s)", text, entry_id)
    raw = fields.get("e", "")
    trace_id: str | None = None
    reply: str | None = None
    try:
        envelope = from_json(raw)
        trace_id, reply = envelope.get("tr"), str(envelope["r"])
    except Exception:  # not even the envelope reads: the dead letter keeps the raw entry
        pass
    notify: list[tuple[str, str]] = []
    if reply is not None and trace_id is not None:
        engine = pool.engines[name]
        ctx = WorkerContext(pool, shard, engine.node, trace_id, reply)
        await engine.fail(
            None,
            ctx,
            trace_id,
            UsageError(text),
            code=FlowErrorCode.NODE_EXCEPTION,
            text=text,
            metadata=metadata,
            deliver=True,
        )
        notify = ctx.outputs
    keys = shard.keys
    cleanup = [keys.deaths(name, entry_id)]
    if trace_id is not None:
        for join in pool.all_joins:
            cleanup += [keys.join_bucket(join, trace_id), keys.join_closing(join, trace_id)]
    await move_to_dead_letters(pool, shard, stream, entry_id, raw, text, notify, cleanup)
    if observability.enabled():
        reason = "decode_error" if metadata.get("decode_error") else "deaths"
        await observability.publish(dead_letter_event(keys, name, reason))


async def move_to_dead_letters(
    pool: WorkerPool,
    shard: WorkerShard,
    stream: str,
    entry_id: str,
    raw: str,
    error: str,
    notify: Sequence[tuple[str, str]] = (),
    cleanup: Sequence[str] = (),
) -> None:
    """Keep the entry in the capped dead-letter stream and take it off `stream`, in one
    transaction with the `notify` outputs (a FlowError for the client) and deleting the
    `cleanup` keys (the trace's join buckets)."""
    fields = {"stream": stream, "id": entry_id, "entry": raw, "error": error}
    async with shard.client.pipeline(transaction=True) as pipe:
        pipe.xadd(shard.keys.dead_letters, fields, maxlen=DEAD_LETTERS_KEPT, approximate=True)
        pipe.xack(stream, GROUP, entry_id)
        pipe.xdel(stream, entry_id)
        pool.queue_outputs(shard, pipe, notify)
        if cleanup:
            pipe.delete(*cleanup)
        await pipe.execute()
