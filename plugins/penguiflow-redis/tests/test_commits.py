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
