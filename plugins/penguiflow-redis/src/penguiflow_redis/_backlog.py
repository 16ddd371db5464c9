"""Backpressure: a producer waits while a node's input stream holds `limit` entries or more.

Processed entries are deleted, so a stream's length is its backlog: queued plus in progress.
Lengths are cached for a few milliseconds so a fast producer does not pay a round trip per
message; the bound may be overshot by what is produced in that window, never by more.
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
    def __init__(self, client: Any, limit: int) -> None:
        if limit < 1:
            raise ConfigurationError(f"max_backlog must be at least 1, got {limit}")
        self._client = client
        self._limit = limit
        self._seen: dict[str, tuple[float, int]] = {}

    def observe(self, stream: str, length: int) -> None:
        """A length read elsewhere (a commit answers with it) counts as a fresh check."""
        self._seen[stream] = (time.monotonic(), length)

    async def wait_for_room(self, stream: str) -> None:
        checked = self._seen.get(stream)
        now = time.monotonic()
        if checked is not None and now - checked[0] < _REFRESH_S and checked[1] < self._limit:
            self._seen[stream] = (checked[0], checked[1] + 1)
            return
        delay = 0.001
        while True:
            length = int(await self._client.xlen(stream))
            self._seen[stream] = (time.monotonic(), length + 1)
            if length < self._limit:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_SLEEP_S)
