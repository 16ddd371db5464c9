"""Conformance suite for message-bus drivers."""

from __future__ import annotations

from typing import Any

from ..bus import BusEnvelope, MessageBus
from ..types import Headers, Message
from ._support import close_quietly, run_with_resource

__all__ = ["MessageBusConformance"]


class MessageBusConformance:
    """Subclass as `class TestMyBus(MessageBusConformance)` and implement `make_bus`.

    Implement `published(bus)` to return what the bus has received so far (in order) when the
    bus can be read back (an in-memory bus, or a consumer on a real broker); without it the
    suite checks only that publishing works inside a running flow.
    """

    async def make_bus(self) -> MessageBus:
        raise NotImplementedError("implement make_bus() to return a fresh bus")

    async def published(self, bus: MessageBus) -> list[BusEnvelope] | None:
        return None

    async def close_bus(self, bus: MessageBus) -> None:
        await close_quietly(bus)

    def _run(self, scenario: Any) -> None:
        run_with_resource(self.make_bus, self.close_bus, scenario)

    def test_satisfies_the_protocol(self) -> None:
        async def scenario(bus: MessageBus) -> None:
            assert isinstance(bus, MessageBus)

        self._run(scenario)

    def test_publish_accepts_envelopes(self) -> None:
        async def scenario(bus: MessageBus) -> None:
            envelope = BusEnvelope(
                edge="a->b", source="a", target="b", trace_id="t", payload={"x": 1},
                headers={"tenant": "t"}, meta=None,
            )  # fmt: skip
            await bus.publish(envelope)
            seen = await self.published(bus)
            if seen is not None:
                assert [e.edge for e in seen][-1:] == ["a->b"]

        self._run(scenario)

    def test_a_flow_publishes_every_edge_in_order(self) -> None:
        from ..core import create
        from ..node import Node, NodePolicy

        async def passthrough(message: Any, ctx: Any) -> Any:
            return message

        async def scenario(bus: MessageBus) -> None:
            first = Node(passthrough, name="first", policy=NodePolicy(validate="none"))
            second = Node(passthrough, name="second", policy=NodePolicy(validate="none"))
            flow = create(first.to(second), message_bus=bus)
            flow.run()
            try:
                message = Message(payload="x", headers=Headers(tenant="conformance"))
                await flow.emit(message)
                assert (await flow.fetch()).payload == "x"
            finally:
                await flow.stop()
            seen = await self.published(bus)
            if seen is not None:
                edges = [e.edge for e in seen if e.trace_id == message.trace_id]
                assert edges == ["OpenSea->first", "first->second", "second->Rookery"]

        self._run(scenario)
