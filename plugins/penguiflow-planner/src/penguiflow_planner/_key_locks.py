"""One lock per stored key, shared by everything in the process that writes that key.

Session KV and the state-store artifact adapter read a record, change it and write it back
through stores that offer no compare-and-set. Two tool calls doing that at once on one key
would lose one of the writes, so every read-modify-write holds the key's lock.

A lock lives only while someone holds or waits for it: the registry counts its users and
drops the entry when the last one leaves, so a long-running process that touches millions
of keys keeps no lock for any of them. Keys include the store's `id()`, which is safe
because the entry (and so the id's meaning) lasts no longer than the operations using it.

The locks serialise writers inside one process (one event loop); two processes sharing a
store can still interleave, which the docs say (docs/planner-tools.md, "Concurrency").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

__all__ = ["held_keys", "key_lock"]

_LOCKS: dict[tuple[int, str], tuple[anyio.Lock, int]] = {}


@asynccontextmanager
async def key_lock(store: object, key: str) -> AsyncIterator[None]:
    """Hold the process-wide lock of `key` in `store` for the duration of the block."""
    slot = (id(store), key)
    lock, users = _LOCKS.get(slot, (None, 0))
    if lock is None:
        lock = anyio.Lock()
    # No await between the lookup and this update: another task cannot slip in between.
    _LOCKS[slot] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        current, count = _LOCKS[slot]
        if count <= 1:
            del _LOCKS[slot]
        else:
            _LOCKS[slot] = (current, count - 1)


def held_keys() -> int:
    """How many keys have a lock right now (for tests: the registry must drain)."""
    return len(_LOCKS)
