"""The shard plan: trace -> shard, hash tags per slot range, key names, the recorded count.

Slots are checked against a real Redis Cluster (`CLUSTER KEYSLOT`, `CLUSTER SHARDS`) started by
scripts/services/redis-cluster.sh."""

from __future__ import annotations

import itertools
import uuid
import zlib
from typing import Any

import pytest
from conftest import ServiceSet
from penguiflow_redis._connect import open_connections, parse_redis_url
from penguiflow_redis._shards import (
    ShardCountMismatch,
    key_slot,
    record_shard_count,
    shard_of,
    shard_tag,
    shard_tags,
    slot_range,
)
from penguiflow_redis._streams import COMMIT_SCRIPT, GROUP, FlowKeys, ensure_group, flow_keys

from penguiflow.errors import ConfigurationError, PenguiFlowError
from penguiflow.testing import run_async

ODD_KEYS = [
    "foo",
    "",
    "{user1000}.following",
    "{user1000}.followers",
    "foo{}{bar}",
    "foo{{bar}}zap",
    "foo{bar}{zap}",
    "{",
    "}{a}",
    "penguiflow:abc:{pf0.3}:in:fetch",
    "ünïcödé{ключ}",
    *(uuid.uuid4().hex for _ in range(40)),
]


def test_shard_of_is_crc32_mod_s_and_stable() -> None:
    # Fixed values: a change here moves every existing trace to another shard.
    assert shard_of("trace-1", 3) == zlib.crc32(b"trace-1") % 3 == 1
    assert [shard_of(f"t{i}", 4) for i in range(8)] == [1, 3, 1, 3, 0, 2, 0, 2]
    assert shard_of(None, 5) == shard_of("", 5) == 0
    assert shard_of("anything", 1) == 0
    counts = [0, 0, 0]
    for _ in range(3000):
        counts[shard_of(uuid.uuid4().hex, 3)] += 1
    assert min(counts) > 800, counts  # spread, not lumped


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 5, 7, 16, 64, 100])
def test_each_shard_tag_lands_in_its_own_slot_range(shards: int) -> None:
    tags = shard_tags(shards)
    assert len(set(tags)) == shards
    for k, tag in enumerate(tags):
        assert key_slot(tag) in slot_range(k, shards)
        assert shard_tag(k, shards) == tag  # deterministic
    ranges = [slot_range(k, shards) for k in range(shards)]
    assert ranges[0].start == 0 and ranges[-1].stop == 16384
    assert all(a.stop == b.start for a, b in itertools.pairwise(ranges))


def test_bad_shard_counts_are_refused() -> None:
    for bad in (0, -1, 16385):
        with pytest.raises(ConfigurationError, match="between 1 and 16384"):
            shard_tags(bad)
    with pytest.raises(ValueError, match=r"shard 3 is not one of 0\.\.2"):
        slot_range(3, 3)


def test_one_untagged_shard_keeps_the_key_names_of_before() -> None:
    (keys,) = flow_keys("penguiflow:abc")
    assert keys == FlowKeys("penguiflow:abc")
    assert keys.node_stream("n") == "penguiflow:abc:in:n"
    assert keys.reply_stream("c1") == "penguiflow:abc:reply:c1"
    assert keys.is_reply_stream("penguiflow:abc:reply:c1")
    assert keys.join_bucket("j", "t") == "penguiflow:abc:join:j:t"
    assert keys.join_closing("j", "t") == "penguiflow:abc:join:j:t:closing"
    assert keys.cancelled("t") == "penguiflow:abc:cancelled:t"
    assert keys.cancelled(None) == "penguiflow:abc:cancelled:"
    assert keys.cancel_channel == "penguiflow:abc:cancel"
    assert keys.dead_letters == "penguiflow:abc:dead"
    assert keys.alive("w") == "penguiflow:abc:alive:w"
    assert keys.emitted("t") == "penguiflow:abc:emitted:t"
    assert keys.deaths("n", "1-0") == "penguiflow:abc:deaths:n:1-0"


def every_key(keys: FlowKeys) -> list[str]:
    return [
        keys.node_stream("fetch"),
        keys.reply_stream("client-1"),
        keys.join_bucket("join", "trace"),
        keys.join_closing("join", "trace"),
        keys.cancelled("trace"),
        keys.cancel_channel,
        keys.dead_letters,
        keys.alive("worker"),
        keys.emitted("trace"),
        keys.deaths("fetch", "1-0"),
    ]


def test_every_key_of_a_shard_shares_the_shards_slot() -> None:
    shards = flow_keys("penguiflow:abc", 3)
    for k, keys in enumerate(shards):
        assert keys.tag == shard_tag(k, 3)
        names = every_key(keys)
        assert all(name.startswith(f"penguiflow:abc:{{{keys.tag}}}:") for name in names)
        assert {key_slot(name) for name in names} == {key_slot(keys.tag)}
        assert keys.is_reply_stream(keys.reply_stream("c"))
        assert not shards[(k + 1) % 3].is_reply_stream(keys.reply_stream("c"))
    # On a cluster one shard is tagged too (its keys must share a slot).
    (one,) = flow_keys("penguiflow:abc", 1, tagged=True)
    assert one.node_stream("n") == "penguiflow:abc:{pf0.0}:in:n"


def test_braces_in_a_tagged_namespace_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="hash tag") as info:
        flow_keys("pf:{x}", 2)
    assert isinstance(info.value, PenguiFlowError)
    assert flow_keys("pf:{x}")[0].node_stream("n") == "pf:{x}:in:n"  # untagged: as before
    with pytest.raises(ConfigurationError, match="tagged=True"):
        flow_keys("pf", 2, tagged=False)


# -- against the real cluster ------------------------------------------------------------------


def cluster_call(cluster: ServiceSet, scenario: Any) -> Any:
    async def run() -> Any:
        connections = open_connections(parse_redis_url(cluster.url), decode_responses=True)
        async with connections:
            return await scenario(connections.client)

    return run_async(run)


def test_key_slot_matches_the_servers_cluster_keyslot(redis_cluster: ServiceSet) -> None:
    keys = [*ODD_KEYS, *(k for s in flow_keys("penguiflow:abc", 5) for k in every_key(s))]

    async def scenario(client: Any) -> list[int]:
        await client.initialize()
        node = client.get_random_node()
        return [
            int(await client.execute_command("CLUSTER KEYSLOT", k, target_nodes=node)) for k in keys
        ]

    assert cluster_call(redis_cluster, scenario) == [key_slot(k) for k in keys]


def test_three_shards_land_on_three_masters(redis_cluster: ServiceSet) -> None:
    async def scenario(client: Any) -> list[str]:
        await client.initialize()
        owners = []
        for keys in flow_keys("penguiflow:abc", 3):
            node = client.get_node_from_key(keys.node_stream("fetch"))
            owners.append(f"{node.host}:{node.port}")
        return owners

    owners = cluster_call(redis_cluster, scenario)
    masters = redis_cluster.url.split("://", 1)[1].split(",")
    assert owners == masters  # `redis-cli --cluster create` gave master k the k-th third


def test_a_commit_touching_one_shards_keys_runs_on_the_cluster(redis_cluster: ServiceSet) -> None:
    """The runtime's Lua commit and the client's cancel transaction work on a cluster when
    their keys are one shard's (what the worker and client integration relies on)."""
    namespace = f"pftest:{uuid.uuid4().hex[:8]}"

    async def scenario(client: Any) -> list[Any]:
        answers = []
        for keys in flow_keys(namespace, 3):
            source, target = keys.node_stream("a"), keys.node_stream("b")
            await ensure_group(client, source)
            await client.xadd(source, {"e": "in"})
            [[_, [(entry_id, _)]]] = await client.xreadgroup(GROUP, "w", {source: ">"}, count=1)
            answers.append(
                await client.eval(
                    COMMIT_SCRIPT,
                    3,
                    source,
                    keys.cancelled("t"),
                    target,
                    GROUP,
                    entry_id,
                    1,
                    "out",
                    0,
                )
            )
            answers.append(await client.xlen(source))
            # cancel: the mark, the dedup hash and a sharded publish, in one transaction
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(keys.cancelled("t"), "1", ex=60)
                pipe.delete(keys.emitted("t"))
                pipe.execute_command("SPUBLISH", keys.cancel_channel, "t")
                answers.append(await pipe.execute())
            await client.delete(source, target, keys.cancelled("t"))
        return answers

    answers = cluster_call(redis_cluster, scenario)
    assert answers[0::3] == [[1, 1]] * 3
    assert answers[1::3] == [0] * 3
    assert [a[0] for a in answers[2::3]] == [True] * 3


def test_the_shard_count_is_recorded_once_and_checked(redis_url: str) -> None:
    namespace = f"pftest:{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        connections = open_connections(parse_redis_url(redis_url), decode_responses=True)
        async with connections:
            client = connections.client
            try:
                await record_shard_count([client], namespace, 3, where="redis://h/0")
                await record_shard_count([client], namespace, 3, where="redis://h/0")
                with pytest.raises(ShardCountMismatch) as info:
                    await record_shard_count([client], namespace, 4, where="redis://h/0")
                text = str(info.value)
                assert "started with 3 shard(s)" in text and "configured with 4" in text
                assert "shards=3" in text and f"{namespace}:shards" in text
                assert isinstance(info.value, ConfigurationError)
            finally:
                await client.delete(f"{namespace}:shards")

    run_async(scenario)


def test_independent_servers_must_keep_their_order(redis_url: str) -> None:
    """Two databases of the test server stand in for two independent servers."""
    namespace = f"pftest:{uuid.uuid4().hex[:8]}"
    base = redis_url.rsplit("/", 1)[0]

    async def scenario() -> None:
        one = open_connections(parse_redis_url(f"{base}/1"), decode_responses=True).client
        two = open_connections(parse_redis_url(f"{base}/2"), decode_responses=True).client
        try:
            await record_shard_count([one, two], namespace, 2, where="redis://a,b/0")
            await record_shard_count([one, two], namespace, 2, where="redis://a,b/0")
            with pytest.raises(ShardCountMismatch, match="listed in the same order"):
                await record_shard_count([two, one], namespace, 2, where="redis://b,a/0")
        finally:
            for client in (one, two):
                await client.delete(f"{namespace}:shards", f"{namespace}:server")
                await client.aclose()

    run_async(scenario)
