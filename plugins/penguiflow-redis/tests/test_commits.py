"""CommitBatcher against a real redis-server: statuses, batching, lengths, a lost script cache."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as redis
from penguiflow_redis._commits import CommitBatcher
from penguiflow_redis._streams import GROUP, ensure_group

from penguiflow.testing import run_async


async def _pending_entries(client: redis.Redis, stream: str, count: int) -> list[str]:
    await ensure_group(client, stream)
    for n in range(count):
        await client.xadd(stream, {"e": str(n)})
    response = await client.xreadgroup(GROUP, "c1", {stream: ">"}, count=count)
    return [entry_id for entry_id, _ in response[0][1]]


def test_commits_batch_and_answer_once_per_entry(redis_url: str) -> None:
    async def scenario() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        base = f"test-commits-{uuid.uuid4().hex[:8]}"
        source, target, cancel_key = f"{base}:in:a", f"{base}:in:b", f"{base}:cancelled:t"
        lengths: list[tuple[str, int]] = []
        batcher = CommitBatcher(client, observe=lambda s, n: lengths.append((s, n)))
        try:
            ids = await _pending_entries(client, source, 20)
            statuses = await asyncio.gather(
                *(
                    batcher.commit(
                        stream=source,
                        entry_id=entry_id,
                        cancel_key=cancel_key,
                        outputs=[(target, f"out-{entry_id}")],
                        group=GROUP,
                    )
                    for entry_id in ids
                )
            )
            assert statuses == [1] * 20
            assert await client.xlen(source) == 0  # acked and deleted
            assert await client.xlen(target) == 20
            assert sorted(n for _, n in lengths) == list(range(1, 21))
            again = await batcher.commit(
                stream=source,
                entry_id=ids[0],
                cancel_key=cancel_key,
                outputs=[(target, "duplicate")],
                group=GROUP,
            )
            assert again == 0 and await client.xlen(target) == 20  # a second finisher adds nothing
        finally:
            await batcher.aclose()
            await client.delete(source, target)
            await client.aclose()

    run_async(scenario)


def test_a_cancelled_trace_writes_nothing_and_a_flushed_script_is_reloaded(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        base = f"test-commits-{uuid.uuid4().hex[:8]}"
        source, target, cancel_key = f"{base}:in:a", f"{base}:in:b", f"{base}:cancelled:t"
        batcher = CommitBatcher(client)
        try:
            first, second = await _pending_entries(client, source, 2)
            await client.set(cancel_key, "1")
            status = await batcher.commit(
                stream=source,
                entry_id=first,
                cancel_key=cancel_key,
                outputs=[(target, "x")],
                group=GROUP,
            )
            assert status == 2 and await client.exists(target) == 0
            await client.script_flush()  # as after a Redis restart without the script cache
            status = await batcher.commit(
                stream=source,
                entry_id=second,
                cancel_key=f"{base}:cancelled:other",
                outputs=[(target, "y")],
                group=GROUP,
            )
            assert status == 1 and await client.xlen(target) == 1
        finally:
            await batcher.aclose()
            await client.delete(source, target, cancel_key)
            await client.aclose()

    run_async(scenario)


def test_join_script_holds_completes_once_and_survives_a_lost_completer(redis_url: str) -> None:
    from penguiflow_redis._streams import JOIN_SCRIPT

    async def scenario() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        base = f"test-join-{uuid.uuid4().hex[:8]}"
        stream, cancel_key = f"{base}:in:join", f"{base}:cancelled:t"
        bucket, closing, out = f"{base}:join:j:t", f"{base}:join:j:t:closing", f"{base}:in:next"
        join = client.register_script(JOIN_SCRIPT)
        batcher = CommitBatcher(client)

        async def arrive(entry_id: str, item: str) -> list[str]:
            keys = [stream, cancel_key, bucket, closing]
            return list(await join(keys=keys, args=[GROUP, entry_id, 3, item, 60_000]))

        try:
            e1, e2, e3, e4 = await _pending_entries(client, stream, 4)
            assert await arrive(e1, "one") == [3]  # held, acked
            assert await arrive(e2, "two") == [3]
            assert await arrive(e3, "three") == [1, "one", "two"]  # completes, not acked yet
            assert await arrive(e4, "four") == [4]  # busy: the bucket is closing
            # The completer "died"; whoever takes its entry over completes from the same items.
            assert await arrive(e3, "three") == [1, "one", "two"]
            status = await batcher.commit(
                stream=stream,
                entry_id=e3,
                cancel_key=cancel_key,
                outputs=[(out, "joined")],
                group=GROUP,
                cleanup=[bucket, closing],
            )
            assert status == 1 and await client.xlen(out) == 1
            assert await client.exists(bucket, closing) == 0
            assert await arrive(e3, "three") == [0]  # committed: a late copy does nothing
            assert await arrive(e4, "four") == [3]  # starts the next bucket of the trace
            assert await client.lrange(bucket, 0, -1) == ["four"]
        finally:
            await batcher.aclose()
            await client.delete(stream, bucket, closing, out)
            await client.aclose()

    run_async(scenario)
