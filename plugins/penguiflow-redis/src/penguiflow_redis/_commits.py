"""Committing processed entries, many per round trip.

Each entry is committed with `COMMIT_SCRIPT` (ack, delete, write its outputs: atomic per entry).
Entries that finish while a batch is on the wire go together in the next pipeline, so a busy
worker pays one round trip per batch instead of one per message, and a lone entry is sent at
once. Batching changes nothing about atomicity: every entry is still its own script call. On
a Redis Cluster the pipeline is split by node (every entry's keys share its shard's slot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from ._streams import COMMIT_SCRIPT

__all__ = ["CommitBatcher"]

_MAX_BATCH = 256

_Pending = tuple[list[str], list[str], "asyncio.Future[int]"]

_WRITTEN = 1


class CommitBatcher:
    """Sends `COMMIT_SCRIPT` calls for finished entries, batching those that queue up."""

    def __init__(
        self,
        client: Any,
        observe: Callable[[str, int], None] | None = None,
        expiry_ms: Callable[[str], int] | None = None,
    ) -> None:
        """`observe(stream, length)` hears each output stream's length after a commit;
        `expiry_ms(stream)` gives an output stream a time to live (0: none)."""
        self._client = client
        self._observe = observe
        self._expiry_ms = expiry_ms
        self._sha: str | None = None
        self._queue: list[_Pending] = []
        self._sender: asyncio.Task[None] | None = None

    async def commit(
        self,
        *,
        stream: str,
        entry_id: str,
        cancel_key: str,
        outputs: Sequence[tuple[str, str]],
        group: str,
        cleanup: Sequence[str] = (),
    ) -> int:
        """1 written, 0 already done elsewhere, 2 trace cancelled; raises connection errors.

        `cleanup` keys are deleted when this call is the one that commits the entry."""
        keys = [stream, cancel_key, *(target for target, _ in outputs), *cleanup]
        args = [group, entry_id, str(len(outputs)), *(data for _, data in outputs)]
        expiry = self._expiry_ms
        args += [str(expiry(target) if expiry else 0) for target, _ in outputs]
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="penguiflow-redis:commits")
        return await future

    async def aclose(self) -> None:
        """Wait for commits already handed over (their callers may have been cancelled)."""
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
            try:
                results = await self._run(batch)
            except Exception as exc:  # Redis unreachable: each caller retries on its own
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (keys, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                    continue
                status = int(result[0])
                if status == _WRITTEN and self._observe is not None:
                    for stream, length in zip(keys[2:], result[1:], strict=False):
                        self._observe(stream, int(length))
                future.set_result(status)

    async def _run(self, batch: list[_Pending], *, reloaded: bool = False) -> list[Any]:
        from redis.exceptions import NoScriptError

        if self._sha is None:
            self._sha = str(await self._client.script_load(COMMIT_SCRIPT))
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                # Not `pipe.evalsha`: redis-py refuses that name in a cluster's pipeline, and
                # the command itself is routed there by its first key like any other.
                pipe.execute_command("EVALSHA", self._sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing and not reloaded:
            # Redis restarted and lost its script cache; those calls did not run, so resend.
            self._sha = None
            retried = await self._run([batch[i] for i in missing], reloaded=True)
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        return results
