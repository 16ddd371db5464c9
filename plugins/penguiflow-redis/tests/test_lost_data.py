"""Redis loses its data under running workers (restarted without persistence, or a failover
to a replica that had not received it yet): what was in Redis is gone, the workers go on.

FLUSHALL on a server of the test's own stands for the loss: the same keys vanish at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import redis.asyncio as redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shard_app import build
from sharding import emit_jobs, fetch_answers, scoped
from waiting import until
from workers import RedisServer, WorkerProcesses

from penguiflow.testing import run_async


def test_a_worker_holding_entries_survives_their_group_vanishing(
    own_server: RedisServer, tmp_path: Path
) -> None:
    """Regression: the loop that renews a worker's claim on the entries it is running
    (XCLAIM, every claim_idle_s / 3) got NOGROUP once Redis had lost the stream's group, and
    the worker stopped; seen when a Sentinel failover promoted a replica that had not synced.

    With `concurrency=3` and three jobs running, `split` has no free slot, so the reader
    leaves its stream out and does not make its group again until a job ends: the renewals
    meanwhile meet the lost group. The worker's heartbeat is set just before each renewal, so
    seeing it written twice after the loss means a renewal ran (and survived)."""
    url = scoped(own_server.url, claim_idle_s=1, concurrency=3)
    pool = WorkerProcesses(url, tmp_path)
    try:
        worker = pool.start(target="shard_app:build")

        async def scenario() -> None:
            client = redis.Redis.from_url(own_server.url, decode_responses=True)
            try:
                async with build(url) as flow:
                    split = f"{flow.namespace}:in:split"
                    await emit_jobs(flow, range(3), delay=5.0)  # the branches take 5 s

                    async def running() -> bool:
                        return int((await client.xpending(split, "workers"))["pending"]) == 3

                    await until(running, "the worker to take the three jobs")
                    await client.flushall()  # Redis lost everything, the jobs included

                    async def heartbeat() -> bool:
                        return bool(await client.keys(f"{flow.namespace}:alive:*"))

                    for beat in ("the heartbeat after the loss", "the one after a renewal"):
                        await until(heartbeat, beat)
                        await client.delete(*await client.keys(f"{flow.namespace}:alive:*"))
                    # New work goes through: the reader made the groups again.
                    await emit_jobs(flow, [3])
                    (answer,) = await fetch_answers(flow, [3], within=30)
                    assert answer.startswith("3:"), answer
            finally:
                await client.aclose()

        run_async(scenario, timeout=90)
        assert worker.poll() is None, worker.log_path.read_text()  # type: ignore[attr-defined]
    finally:
        pool.stop_all()
    log = worker.log_path.read_text()  # type: ignore[attr-defined]
    assert "Traceback" not in log, log
