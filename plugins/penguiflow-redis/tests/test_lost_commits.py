"""An entry pending for a live worker that is not working on it: its commit was lost.

A Redis restart (append-only file flushed every second) or a Sentinel failover (asynchronous
replication) can lose a worker's last commits: the entries come back as pending for that
worker, which is alive, so no other worker takes them over, and the worker itself no longer
holds them. Before the fix they stayed pending for ever and their traces never answered; now a
worker takes back its own pending entries that it is not working on once they are idle for
`claim_idle_s`.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest
import redis.asyncio as redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from distributed_app import Job, build
from penguiflow_redis import RedisRuntime

from penguiflow import Headers, Message
from penguiflow.testing import run_async


def test_a_live_workers_entry_whose_commit_was_lost_is_run_again(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_TEST_MARKERS", str(tmp_path))
    url = (
        f"{redis_url}?flow_name=lost-{uuid.uuid4().hex[:10]}"
        "&embedded_workers=1&concurrency=1&claim_idle_s=0.5"
    )

    async def scenario() -> None:
        headers = Headers(tenant="lost")
        async with build(url) as flow:
            stream = RedisRuntime(url).keys_for(flow.definition).node_stream("work")
            # The worker's one slot of `work` is busy with job 1...
            await flow.emit(Message(payload=Job(n=1, delay=1.0), headers=headers), trace_id="a")
            while not (tmp_path / "started-a").exists():
                await asyncio.sleep(0.02)
            await flow.emit(Message(payload=Job(n=2), headers=headers), trace_id="b")
            client = redis.Redis.from_url(redis_url, decode_responses=True)
            try:
                (consumer,) = [c["name"] for c in await client.xinfo_consumers(stream, "workers")]
                # ...so job 2 waits in the stream; deliver it to the worker behind its back, as
                # a lost commit leaves it: pending for the live worker, not in its hands.
                taken = await client.xreadgroup("workers", consumer, {stream: ">"}, count=1)
                assert taken and len(taken[0][1]) == 1, taken
            finally:
                await client.aclose()
            answers = {
                (await asyncio.wait_for(flow.fetch(trace_id=trace), 30)).payload.text.split(":")[0]
                for trace in ("a", "b")
            }
            assert answers == {"1", "2"}

    run_async(scenario, timeout=60)
