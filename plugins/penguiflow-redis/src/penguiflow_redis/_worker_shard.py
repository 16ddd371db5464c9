"""One shard of a flow as a worker sees it, and taking over what dead workers held in it.

A worker reads every shard of its nodes (`_reader.EntryReader`, one per shard); an entry is
handled entirely inside its shard: its outputs, join buckets, dead letters and death counters
use that shard's keys and its client (`WorkerShard`), so every script and transaction touches
one slot. The heartbeat (`...:alive:<consumer>`) is kept in each shard too, next to the entries
the worker holds there: deciding whether a pending entry's worker is dead never asks another
server.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._backlog import BacklogGate
from ._commits import CommitBatcher
from ._reader import HandlerSlots
from ._streams import GROUP, FlowKeys

if TYPE_CHECKING:
    from ._worker import WorkerSettings

__all__ = ["WorkerShard", "alive", "claim_stale", "dead_after_ms", "forget_gone_consumers"]

logger = logging.getLogger("penguiflow_redis.worker")


@dataclass(slots=True)
class WorkerShard:
    """Shard `index`: its keys, the client holding them, its commits and backpressure view,
    and the handler slots of its reader."""

    index: int
    keys: FlowKeys
    client: Any
    commits: CommitBatcher
    gate: BacklogGate
    join_script: Any
    slots: HandlerSlots
    #: when this shard's silent consumers are looked for next (`forget_gone_consumers`)
    next_forget: float = 0.0

    def expiry_ms(self, stream: str, reply_ttl_ms: int) -> int:
        """A client's reply stream expires unless results keep arriving; others never do."""
        return reply_ttl_ms if self.keys.is_reply_stream(stream) else 0


def dead_after_ms(settings: WorkerSettings) -> int:
    """The heartbeat's time to live: how long a worker that stopped renewing it counts as
    running (at least the claim time, and two blocking reads)."""
    return int(max(settings.claim_idle_s, 2 * settings.block_s + 1.0) * 1000)


async def alive(shard: WorkerShard, consumers: list[str]) -> set[str]:
    """Which of `consumers` are running workers (their heartbeat in `shard` has not expired)."""
    if not consumers:
        return set()
    async with shard.client.pipeline(transaction=False) as pipe:
        for consumer in consumers:
            pipe.exists(shard.keys.alive(consumer))
        found = await pipe.execute()
    return {consumer for consumer, exists in zip(consumers, found, strict=True) if exists}


async def claim_stale(
    shard: WorkerShard,
    *,
    consumer: str,
    settings: WorkerSettings,
    node: str,
    stream: str,
    count: int,
    holding: Container[str] = (),
) -> tuple[list[tuple[str, dict[str, str]]], dict[str, int]]:
    """Entries of `stream` whose worker died holding them, taken over by `consumer`; with
    those a worker died holding `max_deliveries` times or more (they go to the dead letters).

    Entries pending for `consumer` itself that it is not `holding` (working on) are taken
    back too: their commit was lost (a Redis restart or failover lost the last writes, so the
    entry is pending again), and no other worker would ever take them from a live worker.

    An entry idle past `claim_idle_s` is only taken from a worker whose heartbeat has expired
    (`...:alive:<consumer>`, renewed with its entries): a live worker that is merely slow keeps
    its work, and no death is counted against the message (counting deliveries would
    dead-letter healthy messages on a busy machine)."""
    idle_ms = int(settings.claim_idle_s * 1000)
    client = shard.client
    pending = await client.xpending_range(
        stream, GROUP, min="-", max="+", count=count, idle=idle_ms
    )
    if not pending:
        return [], {}
    owners = sorted({row["consumer"] for row in pending} - {consumer})
    living = await alive(shard, owners)
    orphans = [
        row
        for row in pending
        if (row["consumer"] == consumer and row["message_id"] not in holding)
        or row["consumer"] not in (consumer, *living)
    ]
    if not orphans:
        return [], {}
    claimed: list[tuple[str, dict[str, str]]] = [
        (entry_id, fields)
        for entry_id, fields in await client.xclaim(
            stream, GROUP, consumer, idle_ms, [row["message_id"] for row in orphans]
        )
        if fields is not None
    ]
    if not claimed:
        return [], {}
    holders = {row["consumer"] for row in orphans}
    sources = []
    if holders - {consumer}:
        sources.append(f"{', '.join(sorted(holders - {consumer}))}, which stopped (crashed?)")
    if consumer in holders:
        sources.append("itself (their commit was lost: Redis restarted or failed over?)")
    logger.warning(
        "worker %s took over %d entries of %s from %s",
        consumer,
        len(claimed),
        stream,
        " and ".join(sources),
    )
    ttl_ms = int(settings.join_ttl_s * 1000)
    async with client.pipeline(transaction=False) as pipe:
        for entry_id, _ in claimed:
            pipe.incr(shard.keys.deaths(node, entry_id))
            pipe.pexpire(shard.keys.deaths(node, entry_id), ttl_ms)
        counts = await pipe.execute()
    deaths = {entry_id: int(counts[2 * i]) for i, (entry_id, _) in enumerate(claimed)}
    exhausted = {
        entry_id: died for entry_id, died in deaths.items() if died >= settings.max_deliveries
    }
    return claimed, exhausted


async def forget_gone_consumers(
    shard: WorkerShard, *, consumer: str, settings: WorkerSettings, stream: str
) -> None:
    """Remove consumers (workers) silent for `forget_consumers_after_s` that hold nothing and
    have no heartbeat: dead workers would otherwise stay in the group for ever (a live one
    removed anyway would be recreated by its next read)."""
    threshold = int(max(settings.forget_consumers_after_s * 1000, dead_after_ms(settings)))
    silent = [
        row["name"]
        for row in await shard.client.xinfo_consumers(stream, GROUP)
        if row["name"] != consumer and not int(row["pending"]) and int(row["idle"]) >= threshold
    ]
    living = await alive(shard, silent)
    for name in silent:
        if name in living:
            continue
        await shard.client.xgroup_delconsumer(stream, GROUP, name)
        logger.info("worker %s removed the silent consumer %s of %s", consumer, name, stream)
