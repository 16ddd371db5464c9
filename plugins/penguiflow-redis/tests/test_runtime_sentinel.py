"""The runtime through Redis Sentinel (a real primary, replica and three Sentinels started by
scripts/services/redis-sentinel.sh): the `shard_app` flow on two worker processes, and the
primary SIGKILLed mid-run (`kill-primary`).

The documented guarantee: a message emitted or committed just before the crash may be lost
with the old primary (replication is asynchronous), and an emit may raise
`RedisRuntimeUnavailable` while the Sentinels promote the replica; the caller emits again what
raised, or what has not been answered, and the emit dedup keeps that from running anything
twice. Here every job must be answered exactly once."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import ServiceSet
from penguiflow_redis import RedisRuntime
from shard_app import build
from sharding import (
    answered_once_through,
    check_once_each,
    emit_jobs,
    fetch_answers,
    scoped,
    shard_workers,
)

from penguiflow.testing import run_async


def test_a_flow_runs_through_sentinel(redis_sentinel: ServiceSet, tmp_path: Path) -> None:
    url = scoped(redis_sentinel.url)
    assert RedisRuntime(url).address.kind == "sentinel"
    numbers = range(30)

    async def scenario() -> None:
        async with build(url) as flow:
            await emit_jobs(flow, numbers)
            await check_once_each(url, await fetch_answers(flow, numbers), numbers)

    with shard_workers(url, tmp_path):
        run_async(scenario, timeout=120)


def test_a_killed_primary_fails_over_and_the_run_completes(
    redis_sentinel: ServiceSet, tmp_path: Path
) -> None:
    url = scoped(redis_sentinel.url, claim_idle_s=2)
    with shard_workers(url, tmp_path):
        unavailable = run_async(
            lambda: answered_once_through(
                url, lambda: redis_sentinel.run("kill-primary"), emit_unanswered_again=True
            ),
            timeout=240,
        )
    print(f"emits refused during the failover: {len(unavailable)}")
