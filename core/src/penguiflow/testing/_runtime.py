"""Conformance suite for runtime drivers: the same flow definition must behave the same."""

from __future__ import annotations

from typing import Any

from ..types import FinalAnswer, Headers, Message
from ._support import run_async

__all__ = ["RuntimeConformance"]


async def _double(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": message.payload * 2})


async def _answer(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": FinalAnswer(text=f"got {message.payload}")})


class RuntimeConformance:
    """Subclass and implement `make_runtime` (an object with `create_flow`).

    Node functions used by the suite are module-level (importable by name), so runtimes that
    run nodes in other processes can find them.
    """

    async def make_runtime(self) -> Any:
        raise NotImplementedError("implement make_runtime() to return a runtime driver")

    def test_runs_a_chain_and_routes_final_answers(self) -> None:
        from ..node import Node, NodePolicy

        async def scenario() -> None:
            runtime = await self.make_runtime()
            double = Node(_double, name="double", policy=NodePolicy(validate="none"))
            answer = Node(_answer, name="answer", policy=NodePolicy(validate="none"))
            flow = runtime.create_flow(double.to(answer))
            flow.run()
            try:
                results = []
                for value in (1, 2, 3):
                    await flow.emit(Message(payload=value, headers=Headers(tenant="c")))
                    results.append((await flow.fetch()).payload.text)
            finally:
                await flow.stop()
            assert results == ["got 2", "got 4", "got 6"]

        run_async(scenario)
