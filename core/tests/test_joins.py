"""Join strategies: the built-ins pass the suite and are drivers of the kernel's own
distribution like anyone's, can be disabled, and a third-party strategy installed as an entry
point of `penguiflow.join_strategies` joins them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow.joins import (
    AppendJoin,
    BranchOutcome,
    HumanGatedJoin,
    JoinRequest,
    JoinResult,
    ReplaceJoin,
    ToolJoin,
    builtin_join_strategies,
    get_join_strategy,
    join_strategies,
)
from penguiflow.plugins import (
    DRIVER_KINDS,
    DriverConflictError,
    DriverNotFoundError,
    PluginLoadError,
    PluginSettings,
    list_plugins,
)
from penguiflow.testing import DistributionSite as Site
from penguiflow.testing import JoinStrategyConformance
from penguiflow.testing import distribution_site as site_on_path

OK = BranchOutcome(tool="a", ok=True, output=1)
LATER = BranchOutcome(tool="b", ok=True, output=2)
BAD = BranchOutcome(tool="c", ok=False, error="boom", error_type="ValueError")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from site_on_path(tmp_path, monkeypatch)


class TestAppend(JoinStrategyConformance):
    entry_point = "append"

    async def make_strategy(self) -> Any:
        return AppendJoin()


class TestReplace(JoinStrategyConformance):
    entry_point = "replace"

    async def make_strategy(self) -> Any:
        return ReplaceJoin()


class TestHumanGated(JoinStrategyConformance):
    entry_point = "human_gated"

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


def test_builtins_are_drivers_of_the_kernel_and_can_be_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert DRIVER_KINDS["join_strategy"].group == "penguiflow.join_strategies"
    installed = join_strategies()
    assert {"append", "replace", "human_gated"} <= set(installed)
    assert {n: type(s) for n, s in builtin_join_strategies().items()} == {
        n: type(installed[n]) for n in ("append", "replace", "human_gated")
    }
    rows = {(r.group, r.name): r for r in list_plugins(include_hooks=False)}
    append = rows[("penguiflow.join_strategies", "append")]
    assert append.distribution == "penguiflow" and append.status == "available"
    gated = get_join_strategy("human_gated", reason="a person decides")
    assert isinstance(gated, HumanGatedJoin) and gated.reason == "a person decides"
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['colour'\]"):
        get_join_strategy("append", colour="red")

    monkeypatch.setenv("PENGUIFLOW_DISABLE_PLUGINS", "penguiflow.join_strategies:append")
    assert "append" not in join_strategies() and "replace" in join_strategies()
    with pytest.raises(DriverNotFoundError, match="join strategy for name 'append' from "
                       "penguiflow is disabled"):  # fmt: skip
        get_join_strategy("append")


def test_an_unknown_name_lists_the_installed_strategies() -> None:
    with pytest.raises(LookupError) as info:
        get_join_strategy("majority")
    message = str(info.value)
    assert "no join strategy for name 'majority'; installed: " in message
    assert "append" in message and "'penguiflow.join_strategies'" in message


MAJORITY = """
from penguiflow.joins import ToolJoin

def majority(name, **options):
    return ToolJoin(lambda results: max(set(results), key=results.count), name=name)
"""


def test_a_third_party_strategy_installed_as_an_entry_point(site: Site) -> None:
    site.install(
        "pf-test-majority",
        {"penguiflow.join_strategies": {"majority": "pf_test_majority:majority"}},
        {"pf_test_majority": MAJORITY},
    )
    strategy = get_join_strategy("majority")
    assert strategy.name == "majority" and "majority" in join_strategies()
    request = JoinRequest(branches=[OK, LATER, OK], expected_count=3)
    assert run(strategy.join(request)).observation == 1


def test_two_distributions_claiming_one_name(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    for dist in ("pf-test-append-a", "pf-test-append-b"):
        site.install(
            dist,
            {"penguiflow.join_strategies": {"majority": "pf_test_majority:majority"}},
            {"pf_test_majority": MAJORITY},
        )
    with pytest.raises(DriverConflictError) as info:
        get_join_strategy("majority")
    assert "pf-test-append-a" in str(info.value) and "pf-test-append-b" in str(info.value)
    # Listing every strategy leaves the contested one out and says why; strict mode raises.
    with caplog.at_level(logging.WARNING, logger="penguiflow.plugins"):
        found = join_strategies()
    assert "majority" not in found and "append" in found
    assert any("two join strategy drivers claim 'majority'" in r.message for r in caplog.records)
    with pytest.raises(DriverConflictError):
        join_strategies(PluginSettings(strict=True))


def test_a_broken_strategy_never_hides_the_others(site: Site) -> None:
    site.install(
        "pf-test-broken-join",
        {"penguiflow.join_strategies": {"broken": "pf_test_broken_join:factory",
                                        "notajoin": "pf_test_broken_join:not_a_join"}},
        {"pf_test_broken_join": """
            def factory(name, **options):
                raise RuntimeError("needs a configuration it cannot find")

            def not_a_join(name, **options):
                return object()
        """},
    )  # fmt: skip
    found = join_strategies()
    assert "broken" not in found and "notajoin" not in found and "replace" in found
    with pytest.raises(PluginLoadError, match="failed to build: RuntimeError: needs a config"):
        join_strategies(PluginSettings(strict=True))
    with pytest.raises(TypeError, match="join strategy driver 'notajoin' built"):
        get_join_strategy("notajoin")


def run(awaitable: Any) -> Any:
    import asyncio

    async def wrapped() -> Any:
        return await awaitable

    return asyncio.run(wrapped())
