"""rolling_summary: the kernel's suite, background summaries and their health, budgets,
persistence, and strategies chosen by name (the `penguiflow.memory_strategies` drivers, a
third party's included)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from penguiflow_planner import PlannerFinish, ReactPlanner
from penguiflow_planner.memory import RollingSummaryMemory
from tools import catalog

from penguiflow.llm import LLMMessage, ScriptedLLMClient
from penguiflow.memory import ConversationTurn, MemoryBudgetExceeded, MemoryKey
from penguiflow.plugins import DriverNotFoundError, resolve_driver
from penguiflow.state.sqlite import SQLiteStateStore
from penguiflow.testing import DistributionSite as Site
from penguiflow.testing import MemoryStrategyConformance
from penguiflow.testing import distribution_site as site_on_path

KEY = MemoryKey(tenant_id="t", user_id="u", session_id="s")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from site_on_path(tmp_path, monkeypatch)


def summariser(fail: int = 0) -> ScriptedLLMClient:
    """Summaries list the users' lines; the first `fail` calls fail."""
    calls = {"n": 0}

    def reply(messages: list[LLMMessage]) -> Any:
        calls["n"] += 1
        if calls["n"] <= fail:
            return RuntimeError("summariser down")
        lines = [line for line in messages[-1].content.splitlines() if line.startswith("User:")]
        previous = messages[-1].content.split("\n\n")[0].removeprefix("Summary so far:\n")
        kept = "" if previous == "(none)" else previous + " "
        return kept + " ".join(line.removeprefix("User: ") for line in lines)

    return ScriptedLLMClient([reply] * 100)


def turn(n: int) -> ConversationTurn:
    return ConversationTurn(user=f"q{n}", assistant=f"a{n}")


class TestRollingSummaryConformance(MemoryStrategyConformance):
    async def make_strategy(self) -> Any:
        return RollingSummaryMemory(summariser(), max_turns=50)


async def test_old_turns_are_summarised_in_the_background() -> None:
    memory = RollingSummaryMemory(summariser(), max_turns=2)
    for n in range(4):
        await memory.add_turn(KEY, turn(n))
    await memory.flush()
    snapshot = await memory.snapshot(KEY)
    assert snapshot.summary == "q0 q1" and [t.user for t in snapshot.turns] == ["q2", "q3"]
    assert snapshot.health == "healthy"
    assert (await memory.snapshot(None)).turns == []  # no key, no memory


async def test_failures_go_retry_then_degraded_then_recover() -> None:
    memory = RollingSummaryMemory(summariser(fail=3), max_turns=1, max_retries=2)
    await memory.add_turn(KEY, turn(0))
    await memory.add_turn(KEY, turn(1))
    await memory.flush()
    assert await memory.health(KEY) == "retry"
    await memory.add_turn(KEY, turn(2))
    await memory.flush()
    assert await memory.health(KEY) == "retry"
    await memory.add_turn(KEY, turn(3))
    await memory.flush()
    assert await memory.health(KEY) == "degraded"
    degraded = await memory.snapshot(KEY)
    assert [t.user for t in degraded.turns] == ["q0", "q1", "q2", "q3"]  # kept verbatim
    await memory.add_turn(KEY, turn(4))  # the summariser works again
    await memory.flush()
    healthy = await memory.snapshot(KEY)
    assert healthy.health == "healthy" and healthy.summary == "q0 q1 q2 q3"
    assert [t.user for t in healthy.turns] == ["q4"]


async def test_token_budget_overflow_policies() -> None:
    async def filled(overflow: Any) -> RollingSummaryMemory:
        memory = RollingSummaryMemory(summariser(), max_turns=3, max_tokens=12, overflow=overflow)
        for n in range(6):
            await memory.add_turn(
                KEY, ConversationTurn(user=f"question number {n}", assistant="ok")
            )
        await memory.flush()
        return memory

    by_summary = await (await filled("truncate_summary")).snapshot(KEY)
    assert len(by_summary.turns) >= 1 and len(by_summary.summary or "") < 40
    by_oldest = await (await filled("truncate_oldest")).snapshot(KEY)
    assert [t.user for t in by_oldest.turns][-1] == "question number 5"
    with pytest.raises(MemoryBudgetExceeded, match="over max_tokens=12"):
        await (await filled("error")).snapshot(KEY)


async def test_memory_survives_a_restart_with_a_state_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    store = SQLiteStateStore(url)
    memory = RollingSummaryMemory(summariser(), max_turns=1, state_store=store)
    await memory.add_turn(KEY, turn(0))
    await memory.add_turn(KEY, turn(1))
    await memory.flush()
    await store.close()
    reopened = SQLiteStateStore(url)
    again = RollingSummaryMemory(summariser(), max_turns=1, state_store=reopened)
    snapshot = await again.snapshot(KEY)
    assert snapshot.summary == "q0" and [t.user for t in snapshot.turns] == ["q1"]
    await reopened.close()


def test_drivers_by_name() -> None:
    memory = resolve_driver("memory_strategy", "rolling_summary", llm=summariser(), max_turns=3)
    assert isinstance(memory, RollingSummaryMemory) and memory.max_turns == 3
    with pytest.raises(TypeError, match="needs llm="):
        resolve_driver("memory_strategy", "rolling_summary")


KEEP_LAST = """
from penguiflow.memory import TruncationMemory

BUILT = []


def keep_last(name, **options):
    BUILT.append(options)
    return TruncationMemory(max_turns=options.get("keep", 1))
"""


async def test_a_third_party_memory_strategy_installed_as_an_entry_point(site: Site) -> None:
    # Memory strategies are chosen by name, so they are drivers: entry points of
    # `penguiflow.memory_strategies`, never hook contributions.
    site.install(
        "pf-test-keep-last",
        {"penguiflow.memory_strategies": {"keep_last": "pf_test_keep_last:keep_last"}},
        {"pf_test_keep_last": KEEP_LAST},
    )
    answer = json.dumps({"next_node": None, "args": {"answer": "noted"}})

    def reply(messages: list[LLMMessage]) -> str:
        return answer

    planner = ReactPlanner(
        ScriptedLLMClient([reply] * 3),
        catalog(),
        memory="keep_last",
        memory_options={"keep": 1},
    )
    assert importlib.import_module("pf_test_keep_last").BUILT == [{"keep": 1}]
    await planner.run("first", memory_key=KEY)
    result = await planner.run("second", memory_key=KEY)
    assert isinstance(result, PlannerFinish) and result.ok
    snapshot = await planner.memory.snapshot(KEY)
    assert [t.user for t in snapshot.turns] == ["second"]


def test_an_unknown_memory_strategy_says_what_is_installed() -> None:
    with pytest.raises(DriverNotFoundError, match="no memory strategy for name 'nope'; installed"):
        ReactPlanner(ScriptedLLMClient(["{}"]), catalog(), memory="nope")
