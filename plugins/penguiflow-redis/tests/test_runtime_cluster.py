"""The runtime on a real Redis Cluster of three masters (scripts/services/redis-cluster.sh,
started once per session by the `redis_cluster` fixture): the `shard_app` flow (a fan-out, a
join_k node, chaining on) on two worker processes; a worker SIGKILLed mid-run; one master
restarted mid-run (no failover: its shards wait, the others go on); and, on a cluster whose
masters have replicas (`redis_cluster_replicas`), one master SIGKILLed (its replica takes over)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import ServiceSet
from penguiflow_redis import RedisRuntime
from penguiflow_redis._endpoints import locate
from shard_app import build
from sharding import (
    answered_once_through,
    check_once_each,
    definition,
    emit_jobs,
    entries_added,
    fetch_answers,
    scoped,
    shard_workers,
)
from waking import a_full_node_is_read_again_at_once
from workers import WorkerProcesses

from penguiflow.testing import run_async


def test_each_shard_has_a_master_of_its_own(redis_cluster: ServiceSet) -> None:
    url = scoped(redis_cluster.url)

    async def scenario() -> None:
        runtime = RedisRuntime(url)
        async with runtime.open_connections(decode_responses=True) as connections:
            keys = await runtime.connect(definition(url), connections)
            assert len(keys) == 3  # one shard per master by default
            where = {
                (await locate(connections, k, shard.node_stream("split"))).name
                for k, shard in enumerate(keys)
            }
            assert len(where) == 3, where
            # Recorded: a process that counts otherwise is refused (the error names both).
            wrong = RedisRuntime(f"{url}&shards=2")
            try:
                await wrong.connect(definition(url), connections)
            except Exception as exc:
                assert "3 shard(s)" in str(exc) and "configured with 2" in str(exc), exc
            else:
                raise AssertionError("a shard count of 2 was accepted for a 3-shard flow")

    run_async(scenario, timeout=60)


def test_a_flow_runs_on_the_cluster_and_a_sigkilled_worker_loses_nothing(
    redis_cluster: ServiceSet, tmp_path: Path
) -> None:
    url = scoped(redis_cluster.url, claim_idle_s=1)
    pool = WorkerProcesses(url, tmp_path)
    try:
        victim = pool.start(target="shard_app:build")
        pool.start(target="shard_app:build")
        numbers = range(60)

        async def scenario() -> None:
            async with build(url) as flow:
                await emit_jobs(flow, numbers, delay=0.05)
                answers: list[str] = []
                await fetch_answers(flow, numbers[:5], into=answers)
                victim.send_signal(signal.SIGKILL)  # mid-run: it holds entries of every shard
                await fetch_answers(flow, numbers[5:], within=90, into=answers)
                await check_once_each(url, answers, numbers)
            for node in ("split", "join"):
                counts = await entries_added(url, node)
                assert len(counts) == 3 and all(counts), (node, counts)

        run_async(scenario, timeout=180)
        assert victim.wait(timeout=10) == -signal.SIGKILL
    finally:
        pool.stop_all()


def test_a_master_restarted_mid_run_loses_nothing(
    redis_cluster: ServiceSet, tmp_path: Path
) -> None:
    """`restart-master 1` while traces run: the append-only file keeps master 1's shard; while
    it is down, emits of its traces raise RedisRuntimeUnavailable (emitted again, as
    documented), workers retry its commits and reads, and the other shards go on."""
    url = scoped(redis_cluster.url, claim_idle_s=2)
    with shard_workers(url, tmp_path):
        unavailable = run_async(
            lambda: answered_once_through(url, lambda: redis_cluster.run("restart-master", "1")),
            timeout=240,
        )
    # What the client saw is in the documentation; record it in the test's output too.
    print(f"emits refused while master 1 was down: {len(unavailable)}")


def test_a_killed_master_fails_over_to_its_replica_and_the_run_completes(
    redis_cluster_replicas: ServiceSet, tmp_path: Path
) -> None:
    """`kill-master 1` on a cluster whose masters have replicas: the replica takes over the
    master's slots within seconds (node timeout 2 s), and the workers and the client follow
    (MOVED, a reader located again). Replication is asynchronous, as with Sentinel: what
    master 1 acknowledged but had not sent to its replica is lost, and the caller emits
    again what stays unanswered; every job is answered exactly once."""
    url = scoped(redis_cluster_replicas.url, claim_idle_s=2)
    with shard_workers(url, tmp_path):
        unavailable = run_async(
            lambda: answered_once_through(
                url,
                lambda: redis_cluster_replicas.run("kill-master", "1"),
                emit_unanswered_again=True,
            ),
            timeout=240,
        )
    print(f"emits refused during the failover: {len(unavailable)}")


def test_kill_master_kills_the_master_of_the_third_it_names(
    redis_cluster_replicas: ServiceSet,
) -> None:
    """Regression (of the service script): `kill-master 2` aimed at slot 2 * 16384 / 3 =
    10922, the last slot of the second third, and killed master 1."""
    from redis.cluster import RedisCluster

    host, port = (
        redis_cluster_replicas.url.removeprefix("redis+cluster://").split(",")[0].split(":")
    )

    def masters() -> list[int]:  # the port of the master of each third's first slot
        cluster = RedisCluster(host=host, port=int(port))
        try:
            return [cluster.nodes_manager.get_node_from_slot(s).port for s in (0, 5461, 10923)]
        finally:
            cluster.close()

    before = masters()
    redis_cluster_replicas.run("kill-master", "2")
    after = masters()
    assert after[:2] == before[:2] and after[2] != before[2], (before, after)


def test_a_full_node_is_woken_on_the_master_that_holds_its_shard(
    redis_cluster: ServiceSet,
) -> None:
    """The wake on a cluster: CLIENT UNBLOCK must reach the master that holds the shard (a
    client id means something only on its own server)."""
    run_async(lambda: a_full_node_is_read_again_at_once(redis_cluster.url), timeout=90)


def test_a_connection_closed_under_a_command_is_a_connection_error() -> None:
    """Regression: after a master restarted, redis-py 8.1's cluster client closed a node's
    connection while another task was sending on it, and the `AttributeError` it raised
    stopped a worker (seen in the restart test above). It is now a connection error, which
    the worker retries."""
    import pytest
    from penguiflow_redis._connect import _closed_under_use
    from redis.exceptions import ConnectionError as RedisConnectionError

    with pytest.raises(RedisConnectionError, match="closed while in use"), _closed_under_use():
        raise AttributeError("'NoneType' object has no attribute 'writelines'")
    with pytest.raises(AttributeError, match="other"), _closed_under_use():
        raise AttributeError("other")
