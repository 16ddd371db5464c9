"""Backpressure for a client's emits: wait while an ingress stream holds `limit` entries.

The same bound as the worker's `BacklogGate` (a stream's length is its backlog, read with
XLEN and trusted for a few milliseconds, counting what was sent since), for many concurrent
emitters: when the length is stale, one emitter asks Redis and the others wait for its
answer. Without that, a client with 64 tasks emitting sent up to 64 XLENs at once, each on a
connection of its own (redis-py opens one per concurrent command).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from penguiflow.errors import ConfigurationError

__all__ = ["EmitGate"]

_REFRESH_S = 0.02
_MAX_SLEEP_S = 0.05


class EmitGate:
    """`wait_for_room(stream)` returns once the stream has room (at most one XLEN at a time
    per stream, whatever the number of emitters)."""

    def __init__(self, client: Any, limit: int) -> None:
        if limit < 1:
            raise ConfigurationError(f"max_backlog must be at least 1, got {limit}")
        self._client = client
        self._limit = limit
        #: stream -> (when its length was read, the length plus what was sent since)
        self._seen: dict[str, tuple[float, int]] = {}
        self._checks: dict[str, asyncio.Future[None]] = {}
        #: XLEN commands sent (read by tests)
        self.checks = 0

    def wants_length(self, stream: str) -> bool:
        """Whether the reading of `stream` is half way to stale: an emit going out anyway then
        reads the length in its round trip (`EmitBatcher`), so busy emitters never wait for
        an XLEN of their own."""
        seen = self._seen.get(stream)
        return seen is None or time.monotonic() - seen[0] >= _REFRESH_S / 2

    def observe(self, stream: str, length: int) -> None:
        """A length read elsewhere (after an emit) counts as a fresh check."""
        self._seen[stream] = (time.monotonic(), length)

    async def wait_for_room(self, stream: str) -> None:
        delay = 0.001
        while True:
            seen = self._seen.get(stream)
            if seen is not None and time.monotonic() - seen[0] < _REFRESH_S:
                if seen[1] < self._limit:
                    self._seen[stream] = (seen[0], seen[1] + 1)
                    return
                # Full: wait, then read the length again (or take a fresher reading).
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_SLEEP_S)
                if self._seen.get(stream) is seen:
                    self._seen.pop(stream, None)
                continue
            pending = self._checks.get(stream)
            if pending is not None:
                # Shielded: a cancelled waiter must not cancel the check the others wait on.
                await asyncio.shield(pending)
                continue
            await self._check(stream)

    async def _check(self, stream: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._checks[stream] = future
        try:
            self.checks += 1
            length = int(await self._client.xlen(stream))
        except asyncio.CancelledError:
            future.set_result(None)  # the waiters read the length again themselves
            raise
        except Exception as exc:
            # Redis unreachable: every emitter waiting on this check hears it (and tells its
            # own caller that its message was not sent).
            future.set_exception(exc)
            future.exception()  # marked retrieved: there may be no waiter
            raise
        else:
            self._seen[stream] = (time.monotonic(), length)
            future.set_result(None)
        finally:
            del self._checks[stream]
