"""What a worker reports about its flow's streams, as observability events.

Only while event sinks listen (`penguiflow.observability.enabled()`), every
`stats_interval_s` a worker publishes, for each node stream it serves, a `flow.stream_stats`
event (measurements `length`: the backlog, queued and in progress; `pending`: delivered and
not acknowledged; `oldest_pending_age_s`: how long the oldest pending entry has been in the
stream) and, for the flow, `flow.dead_letters` (measurement `count`: entries in the
dead-letter stream). Each entry moved to the dead letters is a `flow.dead_letter` event
(attribute `reason`: `deaths` or `decode_error`). Attributes: `runtime` ("redis"), `flow`
(the flow's key namespace, `prefix:name`), `stream` (the node's name). Exporters turn them
into gauges (penguiflow-prometheus); every worker reports the same numbers for a stream it
serves, so dashboards take the max across workers. A flow split into shards reports each node's
stream once, summed over its shards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from penguiflow import observability
from penguiflow.errors import describe_exception

from ._streams import GROUP, FlowKeys

__all__ = ["dead_letter_event", "publish_shard_stats", "publish_stream_stats", "report_quietly"]

logger = logging.getLogger("penguiflow_redis.worker")


def _entry_ms(entry_id: str) -> int:
    """The time (ms since the epoch, Redis's clock) an entry was added: its id's first part."""
    return int(entry_id.partition("-")[0])


async def publish_stream_stats(client: Any, keys: FlowKeys, nodes: Sequence[str]) -> None:
    """Read the streams of `nodes` and the dead letters in one round trip; publish them."""
    await publish_shard_stats([(client, keys)], nodes)


async def publish_shard_stats(shards: Sequence[tuple[Any, FlowKeys]], nodes: Sequence[str]) -> None:
    """The statistics of a flow split into `shards` ((client, keys) of each, in shard order):
    one round trip per shard, summed over the shards (the oldest pending entry: the oldest of
    any shard), so a flow's events keep one shape whatever its shard count."""
    if not observability.enabled() or not shards:
        return
    dead_total: float | None = None
    lengths: dict[str, float] = {}
    pendings: dict[str, float] = {}
    ages: dict[str, float] = {}
    for client, keys in shards:
        async with client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.xlen(keys.dead_letters)
            for node in nodes:
                stream = keys.node_stream(node)
                pipe.xlen(stream)
                pipe.xpending(stream, GROUP)
            answers = await pipe.execute(raise_on_error=False)
        if isinstance(answers[0], Exception):
            raise answers[0]
        seconds, micros = answers[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        dead = answers[1]
        if not isinstance(dead, Exception):
            dead_total = (dead_total or 0.0) + float(dead)
        for index, node in enumerate(nodes):
            length, pending = answers[2 + 2 * index], answers[3 + 2 * index]
            if isinstance(length, Exception) or isinstance(pending, Exception):
                # A stream whose group is gone (Redis restarted without persistence): the
                # reader makes it again; nothing to report until then.
                continue
            count = int(pending.get("pending") or 0)
            oldest = pending.get("min")
            age_s = max(now_ms - _entry_ms(str(oldest)), 0) / 1000 if count and oldest else 0.0
            lengths[node] = lengths.get(node, 0.0) + float(length)
            pendings[node] = pendings.get(node, 0.0) + float(count)
            ages[node] = max(ages.get(node, 0.0), age_s)
    common = {"runtime": "redis", "flow": shards[0][1].namespace}
    if dead_total is not None:
        event = observability.Event(
            "flow", "dead_letters", attributes=common, measurements={"count": dead_total}
        )
        await observability.publish(event)
    for node in nodes:
        if node not in lengths:
            continue
        event = observability.Event(
            "flow",
            "stream_stats",
            attributes={**common, "stream": node},
            measurements={
                "length": lengths[node],
                "pending": pendings[node],
                "oldest_pending_age_s": ages[node],
            },
        )
        await observability.publish(event)


def dead_letter_event(keys: FlowKeys, node: str, reason: str) -> observability.Event:
    return observability.Event(
        "flow",
        "dead_letter",
        attributes={"runtime": "redis", "flow": keys.namespace, "stream": node, "reason": reason},
    )


async def report_quietly(shards: Sequence[tuple[Any, FlowKeys]], nodes: Sequence[str]) -> None:
    """`publish_shard_stats`, logging (not raising) what went wrong: statistics must never
    stop a worker, and an outage is logged by the readers already."""
    try:
        await publish_shard_stats(shards, nodes)
    except Exception as exc:
        logger.debug(
            "could not read the stream statistics of %s: %s",
            shards[0][1].namespace if shards else "a flow",
            describe_exception(exc),
        )
