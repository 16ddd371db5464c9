"""What the state store and the message bus share: one Redis address (a server, a cluster or
a Sentinel set), the connections to it, and refusing work once closed.

redis-py reconnects on demand, so a closed pool used again would quietly open new
connections; every command goes through `_redis`, which raises the subclass's closed error
instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

from penguiflow.resources import AsyncResource

from ._connect import RedisAddress, RedisConnections, open_connections, parse_redis_url

__all__ = ["RedisResource", "single_address"]


def single_address(url: str) -> RedisAddress:
    """The one place a store or a bus writes to: a server, a cluster or a Sentinel set (a
    list of independent servers is the runtime's, and refused). Schemes are case-insensitive;
    a refused URL is shown with its password masked."""
    return parse_redis_url(url, what="Redis URL", several=False)


class RedisResource(AsyncResource):
    """Owns the connections to one Redis address; subclasses check their own options first,
    then call `_open` (so a refused option leaves nothing open)."""

    #: The error raised by `_redis` after `aclose()`, made with the resource.
    closed_error: ClassVar[type[Exception]]

    url: str
    _connections: RedisConnections
    _client: Any
    _closed: bool

    def _open(self, address: RedisAddress, redis_options: dict[str, Any]) -> None:
        self.url = address.url
        # redis-py is imported here, when the driver is chosen, never at discovery.
        self._connections = open_connections(address, decode_responses=True, **redis_options)
        self._client = self._connections.client
        self._closed = False

    @property
    def _redis(self) -> Any:
        if self._closed:
            raise self.closed_error(self)
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool (idempotent); later calls raise `closed_error`."""
        if self._closed:
            return
        self._closed = True
        await self._connections.aclose()

    async def close(self) -> None:
        """The same as `aclose()`; kept for code written before `aclose()` existed."""
        await self.aclose()
