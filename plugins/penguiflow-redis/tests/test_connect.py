"""Every Redis URL form parses to what it names, a malformed one says which part is wrong (with
its password masked), and the clients opened for each form reach real servers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import ServiceSet
from penguiflow_redis._connect import RedisConnections, open_connections, parse_redis_url

from penguiflow.errors import ConfigurationError, PenguiFlowError
from penguiflow.testing import run_async

SECRET = "s3cret-Pa55"


def test_one_server_forms() -> None:
    for url in (
        "redis://127.0.0.1:6379/0",
        "rediss://u:p@cache.internal:6380/2",
        "unix:///var/run/redis.sock?db=1",
        "redis://localhost",
    ):
        address = parse_redis_url(url)
        assert address.kind == "server" and address.servers == (url,)
        assert address.server_count == 1
    assert parse_redis_url("REDIS://h:1/3").servers == ("redis://h:1/3",)  # scheme lowercased
    assert parse_redis_url("redis://h/5").db == 5
    assert parse_redis_url("redis://h").nodes == (("h", 6379),)


def test_several_independent_servers() -> None:
    address = parse_redis_url(f"redis://:{SECRET}@h1:7001,h2,[::1]:7003/4?socket_timeout=2")
    assert address.kind == "servers" and address.db == 4 and address.server_count == 3
    assert address.nodes == (("h1", 7001), ("h2", 6379), ("::1", 7003))
    assert address.servers == (
        f"redis://:{SECRET}@h1:7001/4?socket_timeout=2",
        f"redis://:{SECRET}@h2:6379/4?socket_timeout=2",
        f"redis://:{SECRET}@[::1]:7003/4?socket_timeout=2",
    )
    assert SECRET not in repr(address) and SECRET not in str(address)
    assert "redis://:***@h1:7001,h2,[::1]:7003/4" in str(address)


def test_cluster_form() -> None:
    address = parse_redis_url(f"REDIS+CLUSTER://app:{SECRET}@n1:7000,n2:7001/?socket_timeout=1.5")
    assert address.kind == "cluster" and address.server_count is None
    assert address.nodes == (("n1", 7000), ("n2", 7001))
    assert address.options == {"username": "app", "password": SECRET, "socket_timeout": 1.5}
    assert parse_redis_url("redis+cluster://n1").nodes == (("n1", 6379),)
    assert parse_redis_url("redis+cluster://n1/0").kind == "cluster"


def test_sentinel_form() -> None:
    address = parse_redis_url(f"redis+sentinel://:{SECRET}@s1,s2:26380/my%20master/3")
    assert address.kind == "sentinel" and address.service == "my master" and address.db == 3
    assert address.nodes == (("s1", 26379), ("s2", 26380))
    assert address.options == {"password": SECRET, "db": 3}
    assert parse_redis_url("redis+sentinel://s1/mymaster").db == 0


@pytest.mark.parametrize(
    ("url", "wrong", "example"),
    [
        ("http://app:{pw}@h:1/0", "must start with one of", "redis+cluster://"),
        ("redis-x://:{pw}@h", "must start with one of", "redis://127.0.0.1:6379/0"),
        ("redis://:{pw}@h:99999/0", "the port '99999' for h", "redis://"),
        ("redis://:{pw}@h:abc/0", "the port 'abc' for h", "redis://"),
        ("redis://:{pw}@h1:1,,h2:2/0", "an empty host", "redis://"),
        ("redis://:{pw}@h1:1,h1:1/0", "lists h1:1 twice", "redis://"),
        ("redis://:{pw}@[::1:7000/0", "malformed IPv6", "redis://"),
        ("redis://:{pw}@h/zero", "'zero' is not a database number", "redis://127.0.0.1"),
        ("unix://:{pw}@", "the socket path", "unix:///var/run/redis"),
        ("redis+cluster://:{pw}@n1/3", "a Redis Cluster has only database 0", "redis+cluster"),
        ("redis+cluster://:{pw}@n1/?db=2", "give the database in the path", "Sentinel"),
        ("redis+sentinel://:{pw}@s1", "must be /<master name>", "/mymaster/0"),
        ("redis+sentinel://:{pw}@s1/m/x", "'x' is not a database number", "/mymaster/0"),
        ("redis+sentinel://:{pw}@s1/m/1/2", "must be /<master name>", "/mymaster/0"),
        ("redis+cluster://:{pw}@n1/?socket_timeout=soon", "Invalid value", "redis+cluster"),
    ],
)
def test_malformed_urls_name_the_wrong_part(url: str, wrong: str, example: str) -> None:
    url = url.format(pw=SECRET)
    with pytest.raises(ConfigurationError) as info:
        parse_redis_url(url, what="redis runtime URL")
    text = str(info.value)
    assert isinstance(info.value, PenguiFlowError) and isinstance(info.value, ValueError)
    assert text.startswith("bad redis runtime URL"), text
    assert wrong in text and example in text, text
    assert SECRET not in text and "***" in text, text


def test_a_store_or_bus_refuses_a_list_of_servers() -> None:
    with pytest.raises(ConfigurationError, match="only the redis runtime can use") as info:
        parse_redis_url(f"redis://:{SECRET}@h1,h2/0", several=False)
    assert SECRET not in str(info.value)


def test_an_unknown_option_in_the_query_is_a_configuration_error() -> None:
    address = parse_redis_url(f"redis+cluster://:{SECRET}@127.0.0.1:1/?no_such_option=1")
    with pytest.raises(ConfigurationError, match="options in the URL's query") as info:
        open_connections(address)
    assert SECRET not in str(info.value)


# -- clients on real servers -------------------------------------------------------------------


def roundtrip(url: str, check: Any = None) -> Any:
    key = f"pftest:{uuid.uuid4().hex}"

    async def scenario() -> Any:
        connections = open_connections(parse_redis_url(url), decode_responses=True)
        assert isinstance(connections, RedisConnections)
        async with connections:
            written = []
            for k, client in enumerate(connections.clients):
                assert connections.for_shard(k) is client
                await client.set(key, f"v{k}", ex=60)
                written.append(await client.get(key))
                await client.delete(key)
            extra = await check(connections) if check is not None else None
        await connections.aclose()  # idempotent
        return written, extra

    return run_async(scenario)


def test_several_servers_get_one_client_each(redis_url: str) -> None:
    # Two spellings of one host stand in for two servers (each client is independent).
    port = redis_url.split(":")[-1].split("/")[0]

    async def check(connections: RedisConnections) -> Any:
        assert connections.for_shard(2) is connections.clients[0]
        with pytest.raises(ConfigurationError, match="names 2 servers"):
            connections.client  # noqa: B018
        return await connections.primaries()

    written, primaries = roundtrip(f"redis://127.0.0.1:{port},localhost:{port}/0", check)
    assert written == ["v0", "v1"] and primaries == 2


def test_a_cluster_client_reaches_every_master(redis_cluster: ServiceSet) -> None:
    async def check(connections: RedisConnections) -> Any:
        client = connections.client
        for n in range(30):  # keys in every third of the slots
            await client.set(f"pftest:{n}", n, ex=60)
        return await connections.primaries()

    written, primaries = roundtrip(redis_cluster.url, check)
    assert written == ["v0"] and primaries == 3


def test_a_sentinel_client_writes_to_the_primary(redis_sentinel: ServiceSet) -> None:
    async def check(connections: RedisConnections) -> Any:
        role = await connections.client.execute_command("ROLE")
        return role[0]

    written, role = roundtrip(redis_sentinel.url, check)
    assert written == ["v0"] and role == "master"
