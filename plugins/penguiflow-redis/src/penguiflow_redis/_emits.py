"""Sending a client's emits, many per round trip.

A round trip through redis-py costs the client far more CPU than building the message (a
system call each way, the event loop waking, the command packed and parsed), so emits that
queue up while one batch is on the wire go together in the next pipeline, and a lone emit is
sent at once as a plain command. The ingress streams' lengths, which backpressure needs, are
read in the same round trip (XLEN after the scripts) whenever the gate's reading is getting
old, so a busy client never spends a round trip of its own on them. Batching changes nothing
about atomicity or deduplication: every emit stays its own script call (`EMIT_SCRIPT` for a
traced message, which Redis runs whole, so the exactly-once-per-trace check is the same as when
it is sent alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["UNTRACED_EMIT_SCRIPT", "EmitBatcher"]

#: An untraced message to every ingress stream at once (KEYS: the streams; ARGV[1]: the
#: entry). A script, like MULTI/EXEC before it, so a crash never leaves it in some streams
#: only; unlike MULTI/EXEC it can share a pipeline with other clients' script calls.
UNTRACED_EMIT_SCRIPT = """
for i = 1, #KEYS do
  redis.call('XADD', KEYS[i], '*', 'e', ARGV[1])
end
return 1
"""

_MAX_BATCH = 256

_Arg = str | int | bytes
#: script, keys, args, streams whose length to read, and the future of a queued call (None
#: for the call sent at once)
_Pending = tuple[str, Sequence[str], Sequence[_Arg], Sequence[str], "asyncio.Future[Any] | None"]


class LengthWatch(Protocol):
    """Who keeps the streams' lengths (the client's `BacklogGate`)."""

    def wants_length(self, stream: str) -> bool:
        """Whether a fresh reading of `stream`'s length is worth a command now."""
        ...

    def observe(self, stream: str, length: int) -> None:
        """`stream` held `length` entries just now."""
        ...


class EmitBatcher:
    """Runs script calls for `emit()`, one at once when alone, batched when they queue up."""

    def __init__(self, client: Any, lengths: LengthWatch | None = None) -> None:
        self._client = client
        self._lengths = lengths
        self._shas: dict[str, str] = {}
        self._queue: list[_Pending] = []
        self._sender: asyncio.Task[None] | None = None
        #: a call or a batch is on the wire: new calls queue for the next batch
        self._busy = False
        #: round trips sent and calls carried by them (read by tests and the benchmark)
        self.round_trips = 0
        self.calls = 0

    async def call(
        self,
        script: str,
        keys: Sequence[str],
        args: Sequence[_Arg],
        *,
        streams: Sequence[str] = (),
    ) -> Any:
        """The script's answer; raises what redis-py raised for this call or its batch (a
        connection error when Redis cannot be reached: the caller reports it). The lengths of
        `streams` are read after it when the `LengthWatch` wants them."""
        if self._busy:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queue.append((script, keys, args, streams, future))
            return await future
        # Nothing on the wire: this call goes at once, from the caller's own task (a task of
        # its own would cost more than the command); calls arriving meanwhile queue up.
        self._busy = True
        try:
            (result,) = await self._run([(script, keys, args, streams, None)])
        finally:
            self._busy = False
            if self._queue:
                self._start_sender()
        if isinstance(result, Exception):
            raise result
        return result

    def _start_sender(self) -> None:
        self._busy = True
        self._sender = asyncio.create_task(self._send(), name="penguiflow-redis:emits")

    async def aclose(self) -> None:
        """Wait for calls already handed over (their callers may have been cancelled), so the
        connection closes after them, not under them."""
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
                try:
                    results = await self._run(batch)
                except Exception as exc:  # Redis unreachable: every caller of the batch hears it
                    for *_, future in batch:
                        if future is not None and not future.done():
                            future.set_exception(exc)
                    continue
                for (*_, future), result in zip(batch, results, strict=True):
                    if future is None or future.done():
                        continue  # its caller was cancelled; the call itself was sent
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._busy = False
            for *_, future in self._queue:  # only when the task itself was cancelled
                if future is not None and not future.done():
                    future.cancel()
            self._queue = []

    async def _sha(self, script: str) -> str:
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = str(await self._client.script_load(script))
        return sha

    async def _run(self, batch: list[_Pending], *, reloaded: bool = False) -> list[Any]:
        from redis.exceptions import NoScriptError

        self.round_trips += 1
        self.calls += len(batch)
        results: list[Any]
        watch = self._lengths
        measured: list[str] = []
        if watch is not None:
            wanted = dict.fromkeys(stream for *_, streams, _ in batch for stream in streams)
            measured = [stream for stream in wanted if watch.wants_length(stream)]
        if len(batch) == 1 and not measured:
            # Alone: a plain command costs the client less than a pipeline of one.
            script, keys, args, _, _ = batch[0]
            sha = await self._sha(script)
            try:
                results = [await self._client.evalsha(sha, len(keys), *keys, *args)]
            except NoScriptError as exc:
                results = [exc]
            except Exception as exc:
                if not _is_reply_error(exc):
                    raise  # the connection: the caller tells what may have happened
                results = [exc]
        else:
            shas = [await self._sha(script) for script, *_ in batch]
            async with self._client.pipeline(transaction=False) as pipe:
                for sha, (_, keys, args, _, _) in zip(shas, batch, strict=True):
                    # Not `pipe.evalsha`: redis-py refuses that name in a cluster's
                    # pipeline; the command itself is routed by its first key there.
                    pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
                for stream in measured:
                    pipe.xlen(stream)
                answers = await pipe.execute(raise_on_error=False)
            results = answers[: len(batch)]
            if watch is not None:
                for stream, length in zip(measured, answers[len(batch) :], strict=True):
                    if isinstance(length, int):
                        watch.observe(stream, length)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing and not reloaded:
            # Redis restarted and lost its script cache; those calls did not run, so resend.
            self._shas.clear()
            retried = await self._run([batch[i] for i in missing], reloaded=True)
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        return results


def _is_reply_error(exc: BaseException) -> bool:
    """An error Redis answered (the script failed), as opposed to a lost connection."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, ResponseError) and not isinstance(
        exc, RedisConnectionError | RedisTimeoutError
    )
