"""The one server holding a shard, for connections that must reach that server itself.

The ordinary clients (`_connect`) route every command on their own: a cluster client by the
key's slot, a Sentinel client to the current primary. A few connections cannot be routed per
command: a blocking read and the CLIENT UNBLOCK that wakes it (a CLIENT ID means something only
on its own server), and a pub/sub subscription (a cluster's sharded channel is heard on the
master of its slot only). Those are opened to the shard's server as known now (`locate`), and
located again after a connection error: a cluster's slot may have moved, a Sentinel set may
have failed over to another primary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from penguiflow.resources import redact_url

from ._connect import RedisConnections

__all__ = ["Endpoint", "locate"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One Redis server: a redis-py URL (a listed server), or a host and port with the
    URL's connection options (a cluster master, a Sentinel set's primary)."""

    url: str | None = None
    host: str = ""
    port: int = 0
    options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The server, without credentials: what groups shards by server, and what logs show."""
        return redact_url(self.url) if self.url is not None else f"{self.host}:{self.port}"

    def open(self, **redis_options: Any) -> Any:
        """A new (lazily connecting) client of this server alone; the caller closes it."""
        from redis.asyncio import Redis

        if self.url is not None:
            return Redis.from_url(self.url, **redis_options)
        return Redis(host=self.host, port=self.port, **{**self.options, **redis_options})


async def locate(
    connections: RedisConnections, shard: int, key: str, *, refresh: bool = False
) -> Endpoint:
    """The server holding shard `shard`, whose keys include `key`.

    `refresh` (after a connection error or a MOVED answer) makes a cluster client learn the
    slots again first; a Sentinel set is asked for its primary every time."""
    address = connections.address
    if address.kind in ("server", "servers"):
        return Endpoint(url=address.servers[shard % len(address.servers)])
    client = connections.client
    if address.kind == "cluster":
        if refresh:
            await client.nodes_manager.initialize()
        else:
            await client.initialize()
        node = client.get_node_from_key(key)
        return Endpoint(host=str(node.host), port=int(node.port), options=address.options)
    host, port = await client.connection_pool.get_master_address()
    return Endpoint(host=str(host), port=int(port), options=address.options)
