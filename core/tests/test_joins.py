"""Join strategies: the built-ins pass the suite, are registered through the hook entry point
like anyone's, can be disabled, and a third-party strategy joins them."""

from __future__ import annotations

from typing import Any

import pytest

from penguiflow.connectors import ToolNameCollisionError
from penguiflow.hookspecs import hookimpl
from penguiflow.joins import (
    AppendJoin,
    BranchOutcome,
    HumanGatedJoin,
    JoinRequest,
    JoinResult,
    ReplaceJoin,
    ToolJoin,
    get_join_strategy,
    join_strategies,
)
from penguiflow.plugins import PluginSettings, load_hooks
from penguiflow.testing import JoinStrategyConformance

OK = BranchOutcome(tool="a", ok=True, output=1)
LATER = BranchOutcome(tool="b", ok=True, output=2)
BAD = BranchOutcome(tool="c", ok=False, error="boom", error_type="ValueError")


class TestAppend(JoinStrategyConformance):
    async def make_strategy(self) -> Any:
        return AppendJoin()


class TestReplace(JoinStrategyConformance):
    async def make_strategy(self) -> Any:
        return ReplaceJoin()


class TestHumanGated(JoinStrategyConformance):
    async def make_strategy(self) -> Any:
        return HumanGatedJoin()


def _join_tool(results: list[Any], failures: list[Any], expected_count: int) -> Any:
    return {"count": len(results), "failed": failures, "of": expected_count}


class TestToolJoin(JoinStrategyConformance):
    async def make_strategy(self) -> Any:
        return ToolJoin(_join_tool)


async def test_builtin_observations() -> None:
    request = JoinRequest(branches=[OK, BAD, LATER], expected_count=3)
    appended = await AppendJoin().join(request)
    assert appended.observation["branches"][1] == {
        "tool": "c", "ok": False, "error": "boom", "error_type": "ValueError"
    }  # fmt: skip
    assert appended.observation["failure_count"] == 1
    replaced = await ReplaceJoin().join(request)
    assert (
        replaced.observation["result"] == 2 and replaced.observation["failures"][0]["tool"] == "c"
    )
    gated = await HumanGatedJoin().join(request)
    assert gated.pause is not None and gated.pause.payload["success_count"] == 2
    summed = await ToolJoin(_join_tool).join(request)
    assert summed == JoinResult(observation={"count": 2, "failed": [BAD.summary()], "of": 3})


def test_a_join_function_with_unknown_parameters_is_refused() -> None:
    def wrong(results: list[Any], budget: int) -> None: ...

    with pytest.raises(TypeError, match=r"parameter\(s\) \['budget'\]"):
        ToolJoin(wrong)


def test_builtins_come_through_the_hook_entry_point_and_can_be_disabled() -> None:
    host = load_hooks(PluginSettings())
    assert {"append", "replace", "human_gated"} <= set(join_strategies(host))
    assert get_join_strategy("append", host).name == "append"
    disabled = load_hooks(PluginSettings(disabled=frozenset({"penguiflow-builtins"})))
    assert "append" not in join_strategies(disabled)
    with pytest.raises(KeyError, match="no join strategy named 'append'; registered:"):
        get_join_strategy("append", disabled)


class _ThirdParty:
    @hookimpl
    def penguiflow_register_join_strategies(self) -> dict[str, Any]:
        return {"majority": ToolJoin(lambda results: max(set(results), key=results.count))}


class _Clash:
    @hookimpl
    def penguiflow_register_join_strategies(self) -> dict[str, Any]:
        return {"append": AppendJoin()}


def test_a_third_party_strategy_and_a_name_clash() -> None:
    host = load_hooks(PluginSettings())
    host.manager.register(_ThirdParty(), name="third-party")
    assert "majority" in join_strategies(host)
    host.manager.register(_Clash(), name="clash")
    with pytest.raises(ToolNameCollisionError, match="'penguiflow-builtins' and by plugin 'clash'"):
        join_strategies(host)
