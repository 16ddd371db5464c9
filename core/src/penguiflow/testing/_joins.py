"""Conformance suite for join strategies."""

from __future__ import annotations

import json
from typing import Any

from ..joins import BranchOutcome, JoinRequest, JoinResult, JoinStrategy
from ._support import close_quietly, run_with_resource

__all__ = ["JoinStrategyConformance"]

OK_A = BranchOutcome(tool="search", args={"q": "a"}, ok=True, output={"hits": 3})
OK_B = BranchOutcome(tool="search", args={"q": "b"}, ok=True, output={"hits": 5})
FAILED = BranchOutcome(
    tool="fetch", args={"url": "x"}, ok=False, error="timed out after 2s", error_type="Timeout"
)


def _text(result: JoinResult) -> str:
    return json.dumps(result.model_dump(mode="json"), default=str)


class JoinStrategyConformance:
    """Subclass and implement `make_strategy()`. A strategy must show every failure to the
    planner (in its observation or its pause), never hide one.

    Set `entry_point` to the name your distribution registers in the
    `penguiflow.join_strategies` group: the suite then checks that the installed driver
    resolves by that name (as the planner finds it) to a strategy of the same class."""

    entry_point: str | None = None

    async def make_strategy(self) -> JoinStrategy:
        raise NotImplementedError("implement make_strategy() to return a join strategy")

    async def close_strategy(self, strategy: JoinStrategy) -> None:
        await close_quietly(strategy)

    def _run(self, scenario: Any) -> None:
        run_with_resource(self.make_strategy, self.close_strategy, scenario)

    def test_is_installed_under_its_entry_point(self) -> None:
        if self.entry_point is None:
            import pytest

            pytest.skip(
                "set entry_point to the name registered in 'penguiflow.join_strategies' "
                "to check the installed driver"
            )
        from ..joins import get_join_strategy, join_strategies

        name = self.entry_point
        installed = get_join_strategy(name)

        async def scenario(strategy: JoinStrategy) -> None:
            assert type(installed) is type(strategy), (
                f"entry point {name!r} builds a {type(installed).__name__}, not the "
                f"{type(strategy).__name__} make_strategy() returns"
            )

        self._run(scenario)
        assert name in join_strategies(), f"{name!r} is missing from join_strategies()"

    def test_satisfies_the_protocol(self) -> None:
        async def scenario(strategy: JoinStrategy) -> None:
            assert isinstance(strategy, JoinStrategy)
            assert isinstance(strategy.name, str) and strategy.name

        self._run(scenario)

    def test_joins_successful_branches(self) -> None:
        async def scenario(strategy: JoinStrategy) -> None:
            result = await strategy.join(JoinRequest(branches=[OK_A, OK_B], expected_count=2))
            assert isinstance(result, JoinResult)
            assert result.pause is not None or result.observation is not None
            json.dumps(result.model_dump(mode="json"))  # the planner stores it as JSON

        self._run(scenario)

    def test_a_failing_branch_is_visible(self) -> None:
        async def scenario(strategy: JoinStrategy) -> None:
            request = JoinRequest(branches=[OK_A, FAILED, OK_B], expected_count=3)
            result = await strategy.join(request)
            assert "timed out after 2s" in _text(result), (
                f"{strategy.name!r} hid the failed branch: {_text(result)}"
            )

        self._run(scenario)

    def test_every_branch_failed_or_none_ran(self) -> None:
        async def scenario(strategy: JoinStrategy) -> None:
            failed = await strategy.join(JoinRequest(branches=[FAILED], expected_count=1))
            assert "timed out after 2s" in _text(failed)
            empty = await strategy.join(JoinRequest(branches=[], expected_count=0))
            assert isinstance(empty, JoinResult)

        self._run(scenario)

    def test_does_not_change_its_input(self) -> None:
        async def scenario(strategy: JoinStrategy) -> None:
            request = JoinRequest(branches=[OK_A, FAILED], expected_count=2)
            before = request.model_dump()
            await strategy.join(request)
            assert request.model_dump() == before

        self._run(scenario)

    def test_is_deterministic(self) -> None:
        async def scenario(strategy: JoinStrategy) -> None:
            request = JoinRequest(branches=[OK_A, FAILED, OK_B], expected_count=3)
            first, second = await strategy.join(request), await strategy.join(request)
            assert _text(first) == _text(second)

        self._run(scenario)
