"""The Redis message bus passes the kernel's conformance suite against a real server."""

from __future__ import annotations

import uuid

import pytest
from penguiflow_redis.bus import RedisMessageBus, envelope_from_fields, envelope_to_fields

from penguiflow.bus import BusEnvelope, MessageBus
from penguiflow.plugins import resolve_driver
from penguiflow.testing import MessageBusConformance
from penguiflow.types import Headers, Message


class TestRedisMessageBus(MessageBusConformance):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> None:
        self.url = redis_url

    async def make_bus(self) -> MessageBus:
        bus: MessageBus = resolve_driver(
            "message_bus", self.url, stream=f"pftest:{uuid.uuid4().hex}:bus", maxlen=1000
        )
        return bus

    async def published(self, bus: MessageBus) -> list[BusEnvelope] | None:
        assert isinstance(bus, RedisMessageBus)
        return await bus.read_all()

    async def close_bus(self, bus: MessageBus) -> None:
        assert isinstance(bus, RedisMessageBus)
        await bus._redis.delete(bus.stream)  # leave nothing behind in the shared server
        await bus.close()


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
