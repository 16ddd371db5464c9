"""Conformance suite for message-bus drivers."""

from __future__ import annotations

from typing import Any
from unittest import mock

from ..bus import BusEnvelope, MessageBus
from ..resources import aclose_resource
from ..types import Headers, Message
from ._support import run_with_resource

__all__ = ["MessageBusConformance"]


class MessageBusConformance:
    """Subclass as `class TestMyBus(MessageBusConformance)` and implement `make_bus`.

    Implement `published(bus)` to return what the bus has received so far (in order) when the
    bus can be read back (an in-memory bus, or a consumer on a real broker); without it the
    suite checks only that publishing works inside a running flow.

    Every bus must close with an idempotent `aclose()` and `async with`
    (`penguiflow.resources.AsyncResource` gives the latter).
    """

    async def make_bus(self) -> MessageBus:
        raise NotImplementedError("implement make_bus() to return a fresh bus")

    async def published(self, bus: MessageBus) -> list[BusEnvelope] | None:
        return None

    async def close_bus(self, bus: MessageBus) -> None:
        await aclose_resource(bus)

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

    def test_aclose_is_idempotent(self) -> None:
        async def scenario(bus: MessageBus) -> None:
            closer = getattr(bus, "aclose", None)
            assert closer is not None, (
                f"{type(bus).__name__} has no aclose(): message buses close with an "
                "idempotent `async aclose()`"
            )
            await bus.publish(_envelope("close->twice"))
            await closer()
            await closer()

        self._run(scenario)

    def test_async_with_returns_the_bus_and_closes_it(self) -> None:
        async def scenario(bus: Any) -> None:
            if not hasattr(bus, "__aenter__") or not hasattr(bus, "aclose"):
                raise AssertionError(
                    f"{type(bus).__name__} does not support `async with` and aclose(): "
                    "subclass penguiflow.resources.AsyncResource and implement aclose()"
                )
            closes: list[object] = []
            real_aclose = type(bus).aclose

            async def counting_aclose(self: Any) -> None:
                closes.append(self)
                await real_aclose(self)

            # Patched on the class for this block only: leaving `async with` must go through
            # the bus's own aclose(), whatever __aexit__ the class has.
            with mock.patch.object(type(bus), "aclose", counting_aclose):
                async with bus as entered:
                    assert entered is bus, "`async with bus as b` must give the bus itself"
                    await bus.publish(_envelope("with->bus"))
                assert closes == [bus], "leaving `async with bus:` must call bus.aclose() once"

        self._run(scenario)


def _envelope(edge: str) -> BusEnvelope:
    source, target = edge.split("->")
    return BusEnvelope(
        edge=edge, source=source, target=target, trace_id=None, payload={"x": 1},
        headers=None, meta=None,
    )  # fmt: skip
