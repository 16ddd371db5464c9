"""The runtime on several independent Redis servers listed in its URL (shard k on server k mod N).

Two redis-server processes of the test's own (127.0.0.1, free ports, stopped at the end), two
`penguiflow worker` processes, and the `shard_app` flow: a fan-out, a join_k node and chaining
on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from penguiflow_redis import RedisRuntime
from penguiflow_redis._shards import ShardCountMismatch
from shard_app import build
from sharding import (
    check_once_each,
    emit_jobs,
    entries_added,
    fetch_answers,
    scoped,
    shard_workers,
)
from workers import RedisServer, WorkerProcesses

from penguiflow.testing import run_async


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis://127.0.0.1:p1,127.0.0.1:p2/0`: two servers started (and stopped) here."""
    servers = [RedisServer(tmp_path_factory.mktemp(f"server{i}")) for i in range(2)]
    try:
        for server in servers:
            server.start()
        yield f"redis://{','.join(f'127.0.0.1:{server.port}' for server in servers)}/0"
    finally:
        for server in servers:
            server.stop()


def test_a_flow_runs_across_two_servers_and_spreads_its_traces(
    two_servers: str, tmp_path: Path
) -> None:
    url = scoped(two_servers, claim_idle_s=2)
    numbers = range(40)

    async def scenario() -> None:
        async with build(url) as flow:
            await emit_jobs(flow, numbers)
            await check_once_each(url, await fetch_answers(flow, numbers), numbers)
        assert RedisRuntime(url).address.kind == "servers"
        # Two shards by default, one per server, each with entries of its own traces.
        for node in ("split", "join"):
            counts = await entries_added(url, node)
            assert len(counts) == 2 and all(counts), (node, counts)
        assert sum(await entries_added(url, "split")) == len(numbers)

    with shard_workers(url, tmp_path):
        run_async(scenario, timeout=120)


def test_a_process_with_another_shard_count_is_refused(two_servers: str, tmp_path: Path) -> None:
    url = scoped(two_servers)

    async def scenario() -> None:
        async with build(url) as flow:  # records 2 shards
            await emit_jobs(flow, [1])
        wrong = build(f"{url}&shards=3")
        with pytest.raises(ShardCountMismatch, match=r"2 shard\(s\).*configured with 3"):
            async with wrong as flow:
                await emit_jobs(flow, [2])

    run_async(scenario, timeout=60)
    # A worker refuses too, and says why.
    pool = WorkerProcesses(f"{url}&shards=3", tmp_path)
    with pytest.raises(AssertionError, match=r"worker exited early") as failed:
        pool.start(target="shard_app:build")
    assert "configured with 3" in str(failed.value) and "2 shard(s)" in str(failed.value)
