"""The Redis message bus passes the kernel's conformance suite against a real server."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from penguiflow_redis.bus import RedisMessageBus, envelope_from_fields, envelope_to_fields

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conformance import RedisBusSuite

from penguiflow.bus import BusClosedError, BusEnvelope, MessageBus
from penguiflow.testing import run_async
from penguiflow.types import Headers, Message


class TestRedisMessageBus(RedisBusSuite):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> None:
        self.url = redis_url

    async def close_bus(self, bus: MessageBus) -> None:
        assert isinstance(bus, RedisMessageBus)
        await bus.aclose()
        await delete_stream(self.url, bus.stream)  # leave nothing behind in the shared server


async def delete_stream(url: str, stream: str) -> None:
    # Its own client: the bus may already be closed (some suite tests close it themselves).
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.delete(stream)
    finally:
        await client.aclose()


def test_envelopes_round_trip_through_stream_fields() -> None:
    message = Message(payload={"q": 1}, headers=Headers(tenant="t"))
    envelope = BusEnvelope("a->b", "a", "b", message.trace_id, message, {"tenant": "t"}, None)
    back = envelope_from_fields(envelope_to_fields(envelope))
    assert back.edge == "a->b" and back.trace_id == message.trace_id
    assert back.payload["payload"] == {"q": 1} and back.headers == {"tenant": "t"}
    odd = BusEnvelope("a->b", "a", "b", None, object(), None, {"k": 1})
    assert envelope_from_fields(envelope_to_fields(odd)).payload.startswith("<object")


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="bad Redis URL"):
        RedisMessageBus("memory://")
    with pytest.raises(ValueError, match="maxlen must be >= 1"):
        RedisMessageBus("redis://127.0.0.1:6390/0", maxlen=0)


def test_a_closed_bus_refuses_work_instead_of_reconnecting(redis_url: str) -> None:
    """Regression: redis-py reconnects on demand, so a closed bus used to keep publishing."""
    stream = f"pftest:{uuid.uuid4().hex}:bus"

    async def scenario() -> None:
        async with RedisMessageBus(redis_url, stream=stream) as bus:
            await bus.publish(BusEnvelope("a->b", "a", "b", None, 1, None, None))
        with pytest.raises(BusClosedError, match=r"^RedisMessageBus at redis://.* is closed"):
            await bus.publish(BusEnvelope("a->b", "a", "b", None, 2, None, None))
        with pytest.raises(BusClosedError):
            await bus.read_all()
        await bus.close()  # the old verb: an alias of aclose(), idempotent
        await delete_stream(redis_url, stream)

    run_async(scenario)
