"""rolling_summary: the kernel's suite, background summaries and their health, budgets,
persistence, and strategies chosen by name (the `penguiflow.memory_strategies` drivers, a
third party's included)."""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from penguiflow_planner import PlannerFinish, ReactPlanner
from penguiflow_planner.memory import RollingSummaryMemory
from tools import catalog

from penguiflow.llm import LLMMessage, ScriptedLLMClient
from penguiflow.memory import ConversationTurn, MemoryBudgetExceeded, MemoryKey
from penguiflow.plugins import DriverNotFoundError, resolve_driver
from penguiflow.state.in_memory import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore
from penguiflow.testing import DistributionSite as Site
from penguiflow.testing import MemoryStrategyConformance, run_async
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
    memory = TruncationMemory(max_turns=options.get("keep", 1))
    BUILT.append((options, memory))
    return memory
"""


def answer(text: str) -> str:
    return json.dumps({"next_node": "final_response", "args": {"answer": text}})


async def test_a_third_party_memory_strategy_installed_as_an_entry_point(site: Site) -> None:
    # Memory strategies are chosen by name, so they are drivers: entry points of
    # `penguiflow.memory_strategies`, never hook contributions.
    site.install(
        "pf-test-keep-last",
        {"penguiflow.memory_strategies": {"keep_last": "pf_test_keep_last:keep_last"}},
        {"pf_test_keep_last": KEEP_LAST},
    )
    llm = ScriptedLLMClient([answer("noted"), answer("noted again"), answer("done")])
    planner = ReactPlanner(llm_client=llm, catalog=catalog(), short_term_memory="keep_last")
    # Built once, with no options: a third party's driver is given only what the caller
    # configured (never the planner's state store or client, which it may refuse).
    ((options, memory),) = importlib.import_module("pf_test_keep_last").BUILT
    assert options == {}
    await planner.run("first", memory_key=KEY)
    result = await planner.run("second", memory_key=KEY)
    assert isinstance(result, PlannerFinish) and result.ok
    snapshot = await memory.snapshot(KEY)
    assert [(t.user, t.assistant) for t in snapshot.turns] == [("second", "noted again")]
    await planner.run("third", memory_key=KEY)  # the model is shown what the strategy kept
    shown = llm.calls[2].messages
    assert any('"user": "second"' in m.content for m in shown)
    assert not any('"user": "first"' in m.content for m in shown)
    await planner.aclose()


def test_an_unknown_memory_strategy_says_what_is_installed() -> None:
    with pytest.raises(DriverNotFoundError, match="no memory strategy for name 'nope'; installed"):
        ReactPlanner(
            llm_client=ScriptedLLMClient(["{}"]), catalog=catalog(), short_term_memory="nope"
        )


# -- storage keys: distinct triples never share memory ----------------------------------------

PART = st.text(alphabet=st.sampled_from(["a", "b", "/", ":", "%", "2", "F", "3", "A"]),
               min_size=1, max_size=6)  # fmt: skip


def key(tenant: str, user: str, session: str) -> MemoryKey:
    return MemoryKey(tenant_id=tenant, user_id=user, session_id=session)


#: two different keys whose 4.0.0 strings (`tenant/user/session`) were the same
LEGACY_TWINS = st.lists(PART, min_size=4, max_size=4).map(
    lambda p: (key(f"{p[0]}/{p[1]}", p[2], p[3]), key(p[0], f"{p[1]}/{p[2]}", p[3]))
)
ANY_TWO = st.tuples(st.builds(key, PART, PART, PART), st.builds(key, PART, PART, PART))


@asynccontextmanager
async def store_named(name: str) -> AsyncIterator[Any]:
    if name == "no store":
        yield None
    elif name == "in-memory store":
        async with InMemoryStateStore() as store:
            yield store
    else:
        async with SQLiteStateStore("sqlite:///:memory:") as store:
            yield store


async def shares_memory(first: MemoryKey, second: MemoryKey, store_name: str) -> bool:
    """Whether `second` sees anything of `first`'s: its turns, or a summary of them (a
    summary is written as soon as a turn overflows `max_turns=1`)."""
    async with store_named(store_name) as store:
        async with RollingSummaryMemory(summariser(), max_turns=1, state_store=store) as memory:
            await memory.add_turn(first, turn(0))
            await memory.add_turn(first, turn(1))
            await memory.flush()
            seen = [await memory.snapshot(second)]
            if store is not None:  # a new process on the same store
                seen.append(await RollingSummaryMemory(summariser(), state_store=store).snapshot(
                    second
                ))  # fmt: skip
        return any(snapshot.turns or snapshot.summary for snapshot in seen)


STORES = ["no store", "in-memory store", "sqlite store"]


@pytest.mark.parametrize("store", STORES)
def test_the_issue_example_keys_do_not_share_a_rolling_summary(store: str) -> None:
    # Regression: both keys were stored as "acme/eu/alice/s1" and read each other's summary.
    eu_tenant, eu_user = key("acme/eu", "alice", "s1"), key("acme", "eu/alice", "s1")
    assert not run_async(lambda: shares_memory(eu_tenant, eu_user, store))


@pytest.mark.parametrize("store", STORES)
def test_distinct_triples_never_share_a_rolling_summary(store: str) -> None:
    @settings(max_examples=25, deadline=None)
    @given(pair=st.one_of(LEGACY_TWINS, ANY_TWO))
    def check(pair: tuple[MemoryKey, MemoryKey]) -> None:
        first, second = pair
        if first != second:
            assert not run_async(lambda: shares_memory(first, second, store))

    check()


async def test_a_rolling_summary_saved_under_an_old_unambiguous_string_is_read() -> None:
    store = InMemoryStateStore()
    old = {"summary": "q0", "turns": [turn(1).model_dump()], "pending": [], "health": "healthy"}
    await store.save_memory_state("acme/alice/s1", old)
    await store.save_memory_state("acme/eu/alice/s1", old)  # ambiguous: never read
    memory = RollingSummaryMemory(summariser(), max_turns=3, state_store=store)
    snapshot = await memory.snapshot(key("acme", "alice", "s1"))
    assert snapshot.summary == "q0" and [t.user for t in snapshot.turns] == ["q1"]
    for parts in (("acme/eu", "alice", "s1"), ("acme", "eu/alice", "s1")):
        snapshot = await memory.snapshot(key(*parts))
        assert snapshot.summary is None and snapshot.turns == []
    await memory.add_turn(key("acme", "alice", "s1"), turn(2))  # saved in the new format
    saved = await store.load_memory_state("v2:acme:alice:s1")
    assert saved is not None and [t["user"] for t in saved["turns"]] == ["q1", "q2"]
