"""One shard of a flow as a client sees it: where its emits go, where its results arrive.

A client emits a trace's messages to the trace's shard (`_shards.shard_of`), with the keys
and the client of that shard, and has a reply stream in every shard: a worker writes a
trace's results to the reply stream of the shard it read the trace from, so an entry's
commit stays in one shard. Each shard has its own emit batching and backpressure view (its
streams are its own); one reader per reply stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._backlog import BacklogGate
from ._emits import EmitBatcher
from ._streams import FlowKeys

__all__ = ["ClientShard", "client_shards"]


@dataclass(slots=True)
class ClientShard:
    """Shard `index` of a client: its keys, the client holding them, this client's reply
    stream there, and the batching and backpressure of its emits."""

    index: int
    keys: FlowKeys
    client: Any
    reply: str
    gate: BacklogGate
    emits: EmitBatcher
    #: the streams of `emit(msg)` without `to` (every ingress node), computed once
    all_ingress: list[str] | None = field(default=None)


def client_shards(
    keys: Sequence[FlowKeys], clients: Any, client_id: str, max_backlog: int
) -> tuple[ClientShard, ...]:
    """The shards of a client whose keys are `keys`; `clients.for_shard(k)` holds shard k."""
    shards = []
    for index, shard_keys in enumerate(keys):
        client = clients.for_shard(index)
        gate = BacklogGate(client, max_backlog)
        shards.append(
            ClientShard(
                index=index,
                keys=shard_keys,
                client=client,
                reply=shard_keys.reply_stream(client_id),
                gate=gate,
                emits=EmitBatcher(client, gate),
            )
        )
    return tuple(shards)
