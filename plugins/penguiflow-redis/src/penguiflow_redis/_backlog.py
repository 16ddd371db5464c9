"""Backpressure: a producer waits while a stream holds `limit` entries or more.

Processed entries are deleted, so a node stream's length is its backlog: queued plus in
progress. A length is read with XLEN and trusted for a few milliseconds, counting what was
sent since, so a fast producer does not pay a round trip per message; the bound may be
overshot by what is produced in that window, never by more. Many producers share one gate
(a client's emitting tasks, a worker's handlers committing to the same next node): when the
length is stale, one of them asks Redis and the others wait for its answer. Without that,
64 concurrent emitters sent up to 64 XLENs at once, each on a connection of its own (redis-py
opens one per concurrent command).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from penguiflow.errors import ConfigurationError

__all__ = ["BacklogGate"]

_REFRESH_S = 0.02
_MAX_SLEEP_S = 0.05


class BacklogGate:
    """`wait_for_room(stream)` returns once the stream has room (at most one XLEN at a time
    per stream, whatever the number of producers waiting)."""

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
        """A length read elsewhere (an emit's or a commit's answer) counts as a fresh check."""
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
            # Redis unreachable: every producer waiting on this check hears it (an emitter
            # tells its own caller that its message was not sent, a worker retries).
            future.set_exception(exc)
            future.exception()  # marked retrieved: there may be no waiter
            raise
        else:
            self._seen[stream] = (time.monotonic(), length)
            future.set_result(None)
        finally:
            del self._checks[stream]
