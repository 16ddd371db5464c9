"""Hearing cancellations: one subscription per server, to the channels of its shards.

A client cancels a trace by publishing its id on the cancel channel of the trace's shard
(`FlowKeys.cancel_channel`). A worker subscribes to every shard's channel, grouped by the server
that holds the shard (`_endpoints.locate`): one connection for one server or a Sentinel set,
one per listed server, one per cluster master. On a cluster the channels are sharded channels
(SSUBSCRIBE; a client publishes with SPUBLISH), heard only on the master of their slot. A lost
connection ends every subscription; they are made again, on the servers located afresh (a
failover moves the primary), with backoff while Redis is away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ._connect import RedisConnections
from ._endpoints import Endpoint, locate
from ._streams import FlowKeys

__all__ = ["listen_for_cancels"]

#: how long one wait for a message lasts: between two, old cancellations are forgotten
_WAIT_S = 1.0


async def listen_for_cancels(
    connections: RedisConnections,
    shards: Sequence[FlowKeys],
    *,
    on_cancel: Callable[[str], None],
    tick: Callable[[], None],
    outage: Callable[[BaseException], None],
    errors: tuple[type[BaseException], ...],
) -> None:
    """Call `on_cancel(trace id)` for each cancellation published in any of `shards`, and
    `tick()` about once a second; runs until cancelled. `errors` (connection errors) are
    reported to `outage` and retried."""
    sharded = connections.address.kind == "cluster"
    delay = 0.1
    refresh = False
    while True:
        try:
            servers: dict[str, tuple[Endpoint, list[str]]] = {}
            for index, keys in enumerate(shards):
                endpoint = await locate(connections, index, keys.cancel_channel, refresh=refresh)
                servers.setdefault(endpoint.name, (endpoint, []))[1].append(keys.cancel_channel)
            listeners = [
                asyncio.create_task(_listen(endpoint, channels, sharded, on_cancel, tick))
                for endpoint, channels in servers.values()
            ]
            try:
                # Subscribed: a later connection error is a new outage (backoff from the start).
                delay = 0.1
                done, _ = await asyncio.wait(listeners, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for listener in listeners:
                    listener.cancel()
                await asyncio.gather(*listeners, return_exceptions=True)
            for listener in done:
                failure = listener.exception()
                if failure is not None:
                    raise failure
        except errors as exc:
            outage(exc)
            refresh = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _listen(
    endpoint: Endpoint,
    channels: list[str],
    sharded: bool,
    on_cancel: Callable[[str], None],
    tick: Callable[[], None],
) -> None:
    client = endpoint.open(decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        if sharded:
            await pubsub.ssubscribe(*channels)
        else:
            await pubsub.subscribe(*channels)
        while True:
            message = await pubsub.get_message(timeout=_WAIT_S)
            if message is not None:
                on_cancel(str(message["data"]))
            tick()
    finally:
        try:
            await pubsub.aclose()
        finally:
            await client.aclose()
