"""`redis://host:port/db`: a message bus that appends every envelope to a Redis Stream.

Also `redis+sentinel://...` and `redis+cluster://...` (see `_connect`): the bus is one stream,
one key, so a cluster needs nothing more.

Other processes read the stream (XREAD / consumer groups) to observe a flow's traffic. The
stream is capped (`maxlen`, approximate trimming) so an unread bus cannot grow without bound.
Close it with `await bus.aclose()` or `async with bus:`; a closed bus raises `BusClosedError`.
"""

from __future__ import annotations

import json
from typing import Any

from penguiflow.bus import BusClosedError, BusEnvelope
from penguiflow.errors import ConfigurationError
from penguiflow.resources import redact_url

from ._resource import RedisResource, single_address

__all__ = ["RedisMessageBus", "envelope_from_fields", "envelope_to_fields"]


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def envelope_to_fields(envelope: BusEnvelope) -> dict[str, str]:
    """The stream entry for an envelope (payloads that are models are sent as their JSON)."""
    return {
        "edge": envelope.edge,
        "source": envelope.source,
        "target": envelope.target,
        "trace_id": envelope.trace_id or "",
        "payload": json.dumps(_jsonable(envelope.payload)),
        "headers": json.dumps(envelope.headers),
        "meta": json.dumps(_jsonable(envelope.meta)),
    }


def envelope_from_fields(fields: dict[str, str]) -> BusEnvelope:
    return BusEnvelope(
        edge=fields["edge"],
        source=fields["source"],
        target=fields["target"],
        trace_id=fields["trace_id"] or None,
        payload=json.loads(fields["payload"]),
        headers=json.loads(fields["headers"]),
        meta=json.loads(fields["meta"]),
    )


class RedisMessageBus(RedisResource):
    """Publishes envelopes to the stream `<prefix>:bus` (override with `stream=`).

    `aclose()` closes its connections; a closed bus raises `BusClosedError`."""

    closed_error = BusClosedError

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "penguiflow",
        stream: str | None = None,
        maxlen: int = 100_000,
        **redis_options: Any,
    ) -> None:
        address = single_address(url)
        if maxlen < 1:
            raise ConfigurationError(f"maxlen must be >= 1 (got {maxlen})")
        self.stream = stream or f"{prefix}:bus"
        self.maxlen = maxlen
        self._open(address, redis_options)

    def __repr__(self) -> str:
        return f"RedisMessageBus({redact_url(self.url)!r}, stream={self.stream!r})"

    async def publish(self, envelope: BusEnvelope) -> None:
        await self._redis.xadd(
            self.stream, envelope_to_fields(envelope), maxlen=self.maxlen, approximate=True
        )

    async def read_all(self) -> list[BusEnvelope]:
        """Everything still in the stream, oldest first (for tools and tests)."""
        entries = await self._redis.xrange(self.stream)
        return [envelope_from_fields(fields) for _, fields in entries]
