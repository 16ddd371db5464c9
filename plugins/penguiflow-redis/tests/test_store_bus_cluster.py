"""The state store and the message bus on a real Redis Cluster of three masters
(scripts/services/redis-cluster.sh): the kernel's conformance suites, the store's keys in one
slot, and a failover-free restart of the master holding them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from conformance import RedisBusSuite, RedisStoreSuite
from conftest import ServiceSet
from penguiflow_redis._shards import key_slot
from penguiflow_redis.store import RedisStateStore

from penguiflow.errors import ConfigurationError
from penguiflow.state import RemoteBinding
from penguiflow.testing import run_async


class TestRedisStateStoreOnACluster(RedisStoreSuite):
    @pytest.fixture(autouse=True)
    def _server(self, redis_cluster: ServiceSet) -> None:
        self.url = redis_cluster.url


class TestRedisMessageBusOnACluster(RedisBusSuite):
    @pytest.fixture(autouse=True)
    def _server(self, redis_cluster: ServiceSet) -> None:
        self.url = redis_cluster.url


def test_a_stores_keys_share_one_slot_on_a_cluster(redis_cluster: ServiceSet) -> None:
    prefix = f"pftest{uuid.uuid4().hex[:12]}"

    async def scenario() -> list[str]:
        async with RedisStateStore(redis_cluster.url, prefix=prefix) as store:
            binding = RemoteBinding(
                trace_id="t1", context_id="c1", task_id="k1", agent_url="http://a"
            )
            await store.save_remote_binding(binding)  # a transaction over two keys
            await store.save_task("s1", {"task_id": "k1"})
            client: Any = store._client
            keys: list[str] = []
            for node in client.get_primaries():
                keys += [
                    k async for k in client.scan_iter(match=f"{{{prefix}}}:*", target_nodes=node)
                ]
            return keys

    keys = run_async(scenario)
    assert len(keys) >= 4
    assert {key_slot(k) for k in keys} == {key_slot(prefix)}


def test_braces_in_a_prefix_are_refused(redis_cluster: ServiceSet) -> None:
    with pytest.raises(ConfigurationError, match=r"without ':', '\{' or '\}'"):
        RedisStateStore(redis_cluster.url, prefix="a{b}")


def test_a_master_restarted_without_failover_keeps_the_store(redis_cluster: ServiceSet) -> None:
    """`restart-master N` stops the master holding the store's slot with SIGTERM and starts
    it again: its append-only file brings the data back, and the store's client reconnects
    on its own. (While it is down, the store's commands fail: there is no replica.)"""
    prefix = f"pftest{uuid.uuid4().hex[:12]}"
    masters = redis_cluster.url.split("://", 1)[1].split(",")

    async def write(store: RedisStateStore, n: int) -> str:
        await store.save_memory_state(f"k{n}", {"n": n})
        client: Any = store._client
        node = client.get_node_from_key(f"{{{prefix}}}:memory:k{n}")
        return f"{node.host}:{node.port}"

    async def scenario() -> list[Any]:
        async with RedisStateStore(redis_cluster.url, prefix=prefix) as store:
            owner = await write(store, 1)
            # The script blocks until the master is back and the cluster reports ok.
            await asyncio.to_thread(redis_cluster.run, "restart-master", str(masters.index(owner)))
            assert await write(store, 2) == owner  # the same store, no new client
            return [await store.load_memory_state("k1"), await store.load_memory_state("k2")]

    assert run_async(scenario) == [{"n": 1}, {"n": 2}]
