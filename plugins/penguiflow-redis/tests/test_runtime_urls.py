"""The runtime's URL forms and the `shards` option (no server needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from penguiflow_redis import RedisRuntime

from penguiflow import Node, create
from penguiflow.errors import ConfigurationError
from penguiflow.plugins import resolve_driver


async def _echo(message: object, ctx: object) -> object:
    return message


def _definition() -> object:
    node = Node(_echo, name="echo")
    return create(node.to()).definition


def test_every_form_is_accepted_by_name_and_by_scheme() -> None:
    cluster = RedisRuntime("redis+cluster://127.0.0.1:7000,127.0.0.1:7001?shards=3")
    assert cluster.address.kind == "cluster" and cluster.shards == 3
    sentinel = RedisRuntime("redis+sentinel://127.0.0.1:26379/mymaster/0")
    assert sentinel.address.kind == "sentinel" and sentinel.shards is None
    servers = RedisRuntime("redis://127.0.0.1:6379,127.0.0.1:6380/0?claim_idle_s=5")
    assert servers.address.kind == "servers" and servers.settings.claim_idle_s == 5
    for url in ("redis+cluster://127.0.0.1:7000", "redis+sentinel://127.0.0.1:26379/m/0"):
        runtime = resolve_driver("runtime", url)
        assert isinstance(runtime, RedisRuntime) and runtime.address.kind in url, runtime


def test_one_server_keeps_the_key_names_of_before_shards() -> None:
    definition = _definition()
    keys = RedisRuntime("redis://127.0.0.1:6379/0?flow_name=x").keys_for(definition)  # type: ignore[arg-type]
    assert keys.node_stream("echo") == "penguiflow:x:in:echo"
    two = RedisRuntime("redis://127.0.0.1:6379/0?flow_name=x&shards=2")
    tagged = two.shard_keys(definition, 2)  # type: ignore[arg-type]
    assert [k.node_stream("echo") for k in tagged] == [
        "penguiflow:x:{pf0.2}:in:echo",
        "penguiflow:x:{pf1.2}:in:echo",
    ]
    # On a cluster even one shard is tagged: its keys must share a slot.
    one = RedisRuntime("redis+cluster://127.0.0.1:7000?flow_name=x&shards=1")
    assert one.keys_for(definition).tag  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:6379/0?shards=0", "shards must be between 1 and 16384, got 0"),
        ("redis://127.0.0.1:6379/0?shards=many", "shards=.many. in the redis runtime URL"),
        ("http://h", "must start with redis://"),
        ("redis+sentinel://127.0.0.1:26379", "the path must be /<master name>"),
    ],
)
def test_bad_urls_and_shard_counts_are_named(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisRuntime(url)


def test_a_worker_pointed_at_no_cluster_waits_then_says_so() -> None:
    """Regression: redis-py's "Redis Cluster cannot be connected" is not a connection error,
    so a worker started before its cluster stopped at once with a traceback instead of
    waiting `--connect-timeout` for it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from workers import HERE, free_port

    url = f"redis+cluster://:secret@127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "penguiflow.cli", "worker", "shard_app:build", "--runtime", url,
         "--connect-timeout", "1"],
        cwd=HERE, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "no Redis answered at redis+cluster://:***@127.0.0.1" in done.stderr, done.stderr
    assert "--connect-timeout" in done.stderr and "secret" not in done.stderr


def test_the_shutdown_grace_is_an_option() -> None:
    """The worker's grace at SIGTERM is set where the rest of the runtime is (the URL), so a
    deployment can match it to its orchestrator's grace period."""
    assert RedisRuntime("redis://127.0.0.1:6379/0").settings.shutdown_grace_s == 10.0
    runtime = RedisRuntime("redis://127.0.0.1:6379/0?shutdown_grace_s=25")
    assert runtime.settings.shutdown_grace_s == 25.0
    with pytest.raises(ConfigurationError, match="shutdown_grace_s must be positive, got 0"):
        RedisRuntime("redis://127.0.0.1:6379/0", shutdown_grace_s=0)
