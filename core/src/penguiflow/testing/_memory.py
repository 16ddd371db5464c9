"""Conformance suite for memory strategies."""

from __future__ import annotations

import asyncio
from typing import Any

from ..memory import ConversationTurn, MemoryKey, MemoryStrategy
from ._support import close_quietly, run_with_resource

__all__ = ["MemoryStrategyConformance"]

ALICE = MemoryKey(tenant_id="acme", user_id="alice", session_id="s1")
BOB = MemoryKey(tenant_id="acme", user_id="bob", session_id="s1")


class MemoryStrategyConformance:
    """Subclass and implement `make_strategy()`. Set `remembers = False` for a strategy that
    deliberately keeps nothing (like `none`); the isolation checks still apply."""

    remembers = True

    async def make_strategy(self) -> MemoryStrategy:
        raise NotImplementedError("implement make_strategy() to return a fresh strategy")

    async def close_strategy(self, strategy: MemoryStrategy) -> None:
        await close_quietly(strategy)

    def _run(self, scenario: Any) -> None:
        run_with_resource(self.make_strategy, self.close_strategy, scenario)

    def test_satisfies_the_protocol(self) -> None:
        async def scenario(strategy: MemoryStrategy) -> None:
            assert isinstance(strategy, MemoryStrategy)

        self._run(scenario)

    def test_no_key_means_no_memory(self) -> None:
        async def scenario(strategy: MemoryStrategy) -> None:
            await strategy.add_turn(None, ConversationTurn(user="secret", assistant="noted"))
            snapshot = await strategy.snapshot(None)
            assert snapshot.turns == [] and not snapshot.summary
            assert "secret" not in str((await strategy.snapshot(ALICE)).to_messages())
            await strategy.clear(None)

        self._run(scenario)

    def test_keys_never_share_memory(self) -> None:
        async def scenario(strategy: MemoryStrategy) -> None:
            await asyncio.gather(
                strategy.add_turn(ALICE, ConversationTurn(user="alice-q", assistant="alice-a")),
                strategy.add_turn(BOB, ConversationTurn(user="bob-q", assistant="bob-a")),
            )
            alice = str((await strategy.snapshot(ALICE)).model_dump())
            bob = str((await strategy.snapshot(BOB)).model_dump())
            assert "bob-q" not in alice and "alice-q" not in bob

        self._run(scenario)

    def test_turns_come_back_in_order_and_clear(self) -> None:
        async def scenario(strategy: MemoryStrategy) -> None:
            for index in range(3):
                await strategy.add_turn(
                    ALICE, ConversationTurn(user=f"q{index}", assistant=f"a{index}")
                )
            snapshot = await strategy.snapshot(ALICE)
            if self.remembers:
                users = [turn.user for turn in snapshot.turns]
                assert users == sorted(users) and users[-1] == "q2"
                assert snapshot.to_messages()[-1].content == "a2"
            await strategy.clear(ALICE)
            assert (await strategy.snapshot(ALICE)).turns == []

        self._run(scenario)
