"""The shard plan: which shard a trace lives in, and the hash tag of each shard's keys.

A flow's keys are split into S shards. Every key of one trace (its entries in each node stream,
its cancel key, join buckets, emitted hash and death counters) lives in the trace's shard, so a
Lua script or a transaction only ever touches keys of one shard:

- the shard of a trace is `zlib.crc32(trace_id) % S`: stable across processes and Python
  versions (Python's `hash()` of a string changes with every process, so it cannot be used);
- the keys of shard k carry the Redis Cluster hash tag `{pf<k>.<n>}` (see `shard_tag`), with n
  the smallest number that puts the tag's slot in the k-th of S equal ranges of the 16384
  slots. `redis-cli --cluster create` gives each master one even range, so with S = the number
  of masters each shard lands on its own master, and a cluster resharded by hand still keeps
  every key of one shard in one slot (which is what the scripts need);
- with one plain server and S = 1 there is no tag at all: key names stay as they were before
  shards existed, so existing deployments read their queues unchanged.

The shard count a flow runs with is recorded in Redis the first time any process starts it
(`record_shard_count`): a process configured with another count would look for traces in the
wrong shards, so it refuses to start instead.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from typing import Any

from penguiflow.errors import ConfigurationError

__all__ = [
    "MAX_SHARDS",
    "SLOTS",
    "ShardCountMismatch",
    "key_slot",
    "record_shard_count",
    "shard_count",
    "shard_of",
    "shard_tag",
    "shard_tags",
    "slot_range",
]

#: Redis Cluster's number of hash slots.
SLOTS = 16384
#: A shard needs a slot of its own range, so there can be no more shards than slots.
MAX_SHARDS = SLOTS

# CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum Redis Cluster uses for
# key slots, as a byte-at-a-time table.
_CRC16_TABLE: tuple[int, ...] = tuple(
    functools.reduce(
        lambda crc, _: ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF,
        range(8),
        byte << 8,
    )
    for byte in range(256)
)


class ShardCountMismatch(ConfigurationError):
    """The flow was started with another shard count than this process is configured with."""


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def key_slot(key: str | bytes) -> int:
    """The Redis Cluster slot of `key` (what `CLUSTER KEYSLOT` answers).

    Only the part between the first `{` and the first `}` after it is hashed when that part is
    not empty (the key's hash tag); otherwise the whole key is."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return _crc16(data) % SLOTS


def _check_count(shards: int) -> None:
    if not 1 <= shards <= MAX_SHARDS:
        raise ConfigurationError(
            f"the shard count must be between 1 and {MAX_SHARDS} (Redis Cluster's slots), "
            f"got {shards}; for example shards=3 for a cluster of three masters"
        )


def shard_of(trace_id: str | None, shards: int) -> int:
    """The shard holding every key of `trace_id` (messages without a trace go to shard 0)."""
    if shards == 1 or not trace_id:
        return 0
    return zlib.crc32(trace_id.encode()) % shards


def slot_range(shard: int, shards: int) -> range:
    """The k-th of `shards` equal ranges of the slots (the one `shard_tag` aims at)."""
    _check_count(shards)
    if not 0 <= shard < shards:
        raise ConfigurationError(f"shard {shard} is not one of 0..{shards - 1}")
    return range(shard * SLOTS // shards, (shard + 1) * SLOTS // shards)


@functools.lru_cache(maxsize=4096)
def shard_tag(shard: int, shards: int) -> str:
    """The hash tag (without braces) of shard `shard` of `shards`: `pf<shard>.<n>` with the
    smallest n whose slot lies in `slot_range(shard, shards)`.

    Deterministic (every process computes the same tags), and cached: finding one takes about
    `shards` checksums of a few bytes."""
    wanted = slot_range(shard, shards)
    # A range holds at least one slot; CRC16 spreads these short strings evenly, so a slot of
    # the range is hit within a few times `shards` tries. The bound only guards the loop.
    for n in range(64 * SLOTS):
        tag = f"pf{shard}.{n}"
        if key_slot(tag) in wanted:
            return tag
    raise AssertionError(f"no hash tag found for shard {shard} of {shards}")  # pragma: no cover


def shard_tags(shards: int) -> tuple[str, ...]:
    """The tags of every shard, in shard order."""
    _check_count(shards)
    return tuple(shard_tag(k, shards) for k in range(shards))


async def shard_count(connections: Any, configured: int | None) -> int:
    """The shard count of a process: `configured` when given, else one shard per listed
    server or cluster master (`connections.primaries()`: 1 for one server or Sentinel)."""
    if configured is not None:
        _check_count(configured)
        return configured
    return int(await connections.primaries())


async def record_shard_count(
    clients: Sequence[Any], namespace: str, shards: int, *, where: str
) -> None:
    """Record `shards` for the flow `namespace` on every server, or check the recorded count.

    `clients` are the independent servers (one for a single server, a cluster or Sentinel; the
    listed servers, in URL order, otherwise). Each gets `<namespace>:shards` (SET NX, no expiry)
    and, when there are several, `<namespace>:server` holding its position in the list, so
    that servers listed in another order (which would move the shards) are refused too.
    `where` is the redacted URL, for the error. Raises `ShardCountMismatch`."""
    _check_count(shards)
    count_key = f"{namespace}:shards"
    for index, client in enumerate(clients):
        await client.set(count_key, str(shards), nx=True)
        recorded = _text(await client.get(count_key))
        if recorded != str(shards):
            raise ShardCountMismatch(
                f"the flow {namespace!r} on {where} was started with {recorded} shard(s), and "
                f"this process is configured with {shards}: every process of one flow must use "
                f"the same count (a trace's keys are found by it). Start this process with "
                f"shards={recorded}, or, to change the count, drain the flow and delete the key "
                f"{count_key!r} on every server first"
            )
        if len(clients) == 1:
            continue
        position = f"{index} of {len(clients)}"
        server_key = f"{namespace}:server"
        await client.set(server_key, position, nx=True)
        recorded = _text(await client.get(server_key))
        if recorded != position:
            raise ShardCountMismatch(
                f"the server listed at position {index} of {len(clients)} in {where} holds the "
                f"flow {namespace!r} as server {recorded}: the servers must be listed in the "
                f"same order, and as many, in every process (shard k lives on server k mod "
                f"N). Fix the URL, or drain the flow and delete {server_key!r} and "
                f"{count_key!r} on every server to lay it out afresh"
            )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
