"""`penguiflow.planner.memory`, written from PenguiFlow 3.11's public API: its types and
defaults, validation, `MemoryKey`, `DefaultShortTermMemory` over our drivers (truncation, the
rolling summary and its health, budgets), persistence, callbacks, and the planner's side
(`PlannerMemory`: keys, context, turns, stores, concurrency).

Time never passes by sleeping here: retries and recovery follow an injected clock."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from penguiflow_planner import memory as memory_module
from penguiflow_planner._memory_bridge import PlannerMemory, key_from_tool_context
from penguiflow_planner.memory import (
    ConversationTurn,
    DefaultShortTermMemory,
    MemoryBudget,
    MemoryBudgetExceeded,
    MemoryHealth,
    MemoryIsolation,
    MemoryKey,
    ShortTermMemory,
    ShortTermMemoryArtifacts,
    ShortTermMemoryConfig,
    ShortTermMemoryPersistence,
    ShortTermMemorySerializable,
    TrajectoryDigest,
    default_token_estimator,
)

import penguiflow.memory
from penguiflow.errors import ConfigurationError, InvalidTypeError, PenguiFlowError
from penguiflow.llm import LLMMessage, ScriptedLLMClient
from penguiflow.memory import TruncationMemory
from penguiflow.plugins import resolve_driver
from penguiflow.state.in_memory import InMemoryStateStore

KEY = MemoryKey("acme", "alice", "chat-1")
#: a name no Literal allows (typed Any, so the type checker lets the tests pass it)
BAD_NAME: Any = "forever"


class Clock:
    """A time source the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Summariser:
    """PenguiFlow's summarizer contract: request {previous_summary, turns} -> {summary}. The
    summary lists the users' messages; the first `fail` calls fail; with `gate` each call waits
    for it (to look at the memory while a summary runs)."""

    def __init__(self, fail: int = 0, gate: asyncio.Event | None = None) -> None:
        self.fail = fail
        self.gate = gate
        self.calls: list[dict[str, Any]] = []
        self.started = asyncio.Event()

    async def __call__(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls.append(json.loads(json.dumps(request)))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if len(self.calls) <= self.fail:
            raise RuntimeError("summariser down")
        previous = request["previous_summary"]
        users = " ".join(turn["user"] for turn in request["turns"])
        return {"summary": f"{previous} {users}".strip()}


def turn(n: int, **fields: Any) -> ConversationTurn:
    return ConversationTurn(f"q{n}", f"a{n}", **fields)


def config(strategy: str = "truncation", **fields: Any) -> ShortTermMemoryConfig:
    budget = fields.pop("budget", None) or MemoryBudget(full_zone_turns=fields.pop("zone", 5))
    return ShortTermMemoryConfig(strategy=strategy, budget=budget, **fields)  # type: ignore[arg-type]


async def context(memory: DefaultShortTermMemory) -> dict[str, Any]:
    return dict((await memory.get_llm_context()).get("conversation_memory", {}))


def health(memory: DefaultShortTermMemory) -> MemoryHealth:
    # A function, not the property: a type checker would narrow the property after one check.
    return memory.health


def users(turns: list[dict[str, Any]]) -> list[str]:
    return [t["user"] for t in turns]


# -- types, defaults, validation --------------------------------------------------------------


def test_the_public_names_are_penguiflows() -> None:
    expected = {
        "ConversationTurn", "DefaultShortTermMemory", "MemoryBudget", "MemoryBudgetExceeded",
        "MemoryHealth", "MemoryIsolation", "MemoryKey", "ShortTermMemory",
        "ShortTermMemoryArtifacts", "ShortTermMemoryConfig", "ShortTermMemoryPersistence",
        "ShortTermMemorySerializable", "TrajectoryDigest", "default_token_estimator",
    }  # fmt: skip
    assert expected <= set(memory_module.__all__)
    for name in memory_module.__all__:
        assert getattr(memory_module, name) is not None
    import penguiflow.planner.memory as penguiflow_path

    assert penguiflow_path is memory_module  # PenguiFlow's import path is this module
    # the driver's entry point still names this module
    assert memory_module.rolling_summary_memory.__name__ == "rolling_summary_memory"


def test_defaults_are_penguiflows() -> None:
    budget = MemoryBudget()
    assert (budget.full_zone_turns, budget.summary_max_tokens, budget.total_max_tokens) == (
        5, 1000, 10000,
    )  # fmt: skip
    assert budget.overflow_policy == "truncate_oldest"
    isolation = MemoryIsolation()
    assert (isolation.tenant_key, isolation.user_key, isolation.session_key) == (
        "tenant_id", "user_id", "session_id",
    )  # fmt: skip
    assert isolation.require_explicit_key is True
    cfg = ShortTermMemoryConfig()
    assert cfg.strategy == "none" and cfg.include_trajectory_digest is True
    assert cfg.summarizer_model is None and cfg.token_estimator is None
    assert (cfg.recovery_backlog_limit, cfg.retry_attempts) == (20, 3)
    assert (cfg.retry_backoff_base_s, cfg.degraded_retry_interval_s) == (2.0, 30.0)
    assert [h.value for h in MemoryHealth] == ["healthy", "retry", "degraded", "recovering"]
    assert isinstance(MemoryHealth.RETRY, str)  # a str enum, as in PenguiFlow
    plain = ConversationTurn("hi", "hello")
    assert plain.trajectory_digest is None and plain.artifacts_shown == {}
    assert plain.artifacts_hidden_refs == [] and plain.ts == 0.0
    digest = TrajectoryDigest(["search"], "- search: ok")
    assert digest.reasoning_summary is None and digest.artifacts_refs == []
    assert default_token_estimator("") == 1 and default_token_estimator("abcdefgh") == 3


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MemoryBudget(full_zone_turns=-1), "full_zone_turns must be >= 0"),
        (lambda: MemoryBudget(summary_max_tokens=20, total_max_tokens=10), "must be <= total"),
        (
            lambda: MemoryBudget(overflow_policy=BAD_NAME),
            "overflow_policy must be one of.*got 'forever'",
        ),
        (lambda: MemoryIsolation(tenant_key=""), "tenant_key must be a non-empty string"),
        (lambda: ShortTermMemoryConfig(strategy=BAD_NAME), "strategy must be one of"),
        (lambda: ShortTermMemoryConfig(retry_attempts=-1), "retry_attempts must be >= 0"),
        (lambda: ShortTermMemoryConfig(retry_backoff_base_s=-1), "retry_backoff_base_s"),
        (lambda: ShortTermMemoryConfig(degraded_retry_interval_s=-1), "degraded_retry"),
        (lambda: ShortTermMemoryConfig(recovery_backlog_limit=-1), "recovery_backlog_limit"),
        (
            lambda: DefaultShortTermMemory(config=ShortTermMemoryConfig("rolling_summary")),
            "needs summarizer=",
        ),
    ],
)
def test_bad_values_are_value_errors_that_name_the_field(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        build()
    assert isinstance(caught.value, ConfigurationError)


def test_values_of_the_wrong_kind_are_type_errors() -> None:
    with pytest.raises(TypeError, match="full_zone_turns must be an int"):
        MemoryBudget(full_zone_turns="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="budget must be a MemoryBudget"):
        ShortTermMemoryConfig(budget={"full_zone_turns": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="config must be a ShortTermMemoryConfig"):
        DefaultShortTermMemory(config=MemoryBudget())  # type: ignore[arg-type]


# -- MemoryKey ---------------------------------------------------------------------------------


def test_memory_key_is_the_kernels_built_as_penguiflow_builds_it() -> None:
    assert MemoryKey is penguiflow.memory.MemoryKey  # one key type in the whole project
    positional = MemoryKey("acme", "alice", "chat-1")
    assert positional == MemoryKey(tenant_id="acme", user_id="alice", session_id="chat-1")
    assert positional.composite() == "acme:alice:chat-1"
    assert positional.as_string() == "v2:acme:alice:chat-1"
    assert {positional: 1}[MemoryKey("acme", "alice", "chat-1")] == 1  # frozen, hashable
    with pytest.raises(ValueError):
        MemoryKey("", "alice", "chat-1")  # fail closed: a blank part shares nothing
    with pytest.raises(TypeError, match="session_id"):
        MemoryKey("acme", "alice")  # type: ignore[call-arg]


def test_composite_is_for_display_only_storage_stays_injective() -> None:
    first, second = MemoryKey("a:b", "c", "d"), MemoryKey("a", "b:c", "d")
    assert first.composite() == second.composite()  # PenguiFlow's string is ambiguous...
    assert first.as_string() != second.as_string()  # ...ours, which stores memory, is not


# -- DefaultShortTermMemory: none and truncation -------------------------------------------------


async def test_strategy_none_remembers_nothing() -> None:
    memory = DefaultShortTermMemory(config=ShortTermMemoryConfig())
    await memory.add_turn(turn(0))
    assert await memory.get_llm_context() == {}
    assert memory.estimate_tokens() == default_token_estimator("{}")
    assert health(memory) is MemoryHealth.HEALTHY and memory.to_dict()["turns"] == []
    await memory.flush()


async def test_truncation_keeps_the_full_zone_with_digests() -> None:
    memory = DefaultShortTermMemory(config=config(zone=2))
    digest = TrajectoryDigest(["search"], "- search: 3 hits", "looked it up")
    for n in range(3):
        await memory.add_turn(turn(n, trajectory_digest=digest if n == 2 else None))
    shown = await context(memory)
    assert shown == {
        "recent_turns": [
            {"user": "q1", "assistant": "a1"},
            {
                "user": "q2",
                "assistant": "a2",
                "trajectory_digest": {
                    "tools_invoked": ["search"],
                    "observations_summary": "- search: 3 hits",
                    "reasoning_summary": "looked it up",
                    "artifacts_refs": [],
                },
            },
        ]
    }
    payload = json.dumps(shown, ensure_ascii=False, sort_keys=True)
    assert memory.estimate_tokens() == default_token_estimator(payload)

    hidden = DefaultShortTermMemory(config=config(zone=2, include_trajectory_digest=False))
    await hidden.add_turn(turn(0, trajectory_digest=digest))
    assert (await context(hidden)) == {"recent_turns": [{"user": "q0", "assistant": "a0"}]}


async def test_a_full_zone_of_zero_keeps_no_turn() -> None:
    memory = DefaultShortTermMemory(config=config(zone=0))
    await memory.add_turn(turn(0))
    assert await context(memory) == {"recent_turns": []}


async def test_truncation_budget_drops_the_oldest_with_the_configured_estimator() -> None:
    budget = MemoryBudget(full_zone_turns=10, summary_max_tokens=0, total_max_tokens=3)
    memory = DefaultShortTermMemory(
        config=config(budget=budget, token_estimator=lambda text: text.count('"user"'))
    )
    for n in range(5):
        await memory.add_turn(turn(n))
    assert users((await context(memory))["recent_turns"]) == ["q2", "q3", "q4"]
    assert memory.estimate_tokens() == 3


async def test_truncation_keeps_the_budget_even_against_a_single_turn() -> None:
    budget = MemoryBudget(total_max_tokens=20, summary_max_tokens=10)
    memory = DefaultShortTermMemory(config=config(budget=budget))
    await memory.add_turn(turn(0))
    await memory.add_turn(ConversationTurn("x" * 200, "y"))
    assert await context(memory) == {"recent_turns": []}  # PenguiFlow's budget holds


async def test_overflow_error_raises_and_does_not_store_the_turn() -> None:
    budget = MemoryBudget(total_max_tokens=20, summary_max_tokens=10, overflow_policy="error")
    memory = DefaultShortTermMemory(config=config(budget=budget))
    await memory.add_turn(ConversationTurn("x" * 10, "y"))
    with pytest.raises(MemoryBudgetExceeded, match="over max_tokens=20") as caught:
        await memory.add_turn(ConversationTurn("x" * 80, "y"))
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, PenguiFlowError)
    assert users((await context(memory))["recent_turns"]) == ["x" * 10]


async def test_add_turn_takes_penguiflows_turn() -> None:
    memory = DefaultShortTermMemory(config=config())
    with pytest.raises(InvalidTypeError, match="ConversationTurn"):
        await memory.add_turn(penguiflow.memory.ConversationTurn(user="q", assistant="a"))  # type: ignore[arg-type]


# -- rolling summary ---------------------------------------------------------------------------


async def test_rolling_summary_folds_older_turns_in_the_background() -> None:
    summariser = Summariser()
    memory = DefaultShortTermMemory(config=config("rolling_summary", zone=2), summarizer=summariser)
    for n in range(4):
        await memory.add_turn(turn(n))
    before = await context(memory)
    assert users(before["recent_turns"]) == ["q2", "q3"]
    assert "summary" not in before or before["summary"]  # the summary may have begun
    await memory.flush()
    after = await context(memory)
    assert after == {
        "recent_turns": [{"user": "q2", "assistant": "a2"}, {"user": "q3", "assistant": "a3"}],
        "summary": "q0 q1",
    }
    assert summariser.calls[0]["previous_summary"] == ""
    assert summariser.calls[0]["turns"][0] == {"user": "q0", "assistant": "a0"}
    assert health(memory) is MemoryHealth.HEALTHY
    await memory.aclose()


async def test_pending_turns_are_shown_until_summarised() -> None:
    gate = asyncio.Event()
    summariser = Summariser(gate=gate)
    memory = DefaultShortTermMemory(config=config("rolling_summary", zone=1), summarizer=summariser)
    await memory.add_turn(turn(0))
    await memory.add_turn(turn(1))
    await summariser.started.wait()
    shown = await context(memory)
    assert users(shown["pending_turns"]) == ["q0"] and users(shown["recent_turns"]) == ["q1"]
    gate.set()
    await memory.flush()
    assert await context(memory) == {
        "recent_turns": [{"user": "q1", "assistant": "a1"}],
        "summary": "q0",
    }


async def test_retry_degraded_recovering_healthy_on_a_fake_clock() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []

    async def on_health_changed(old: MemoryHealth, new: MemoryHealth) -> None:
        changes.append((old.value, new.value))

    summariser = Summariser(fail=3)
    cfg = config(
        "rolling_summary",
        zone=1,
        retry_attempts=2,
        retry_backoff_base_s=2.0,
        degraded_retry_interval_s=30.0,
        on_health_changed=on_health_changed,
    )
    memory = DefaultShortTermMemory(config=cfg, summarizer=summariser, time_source=clock)
    await memory.add_turn(turn(0))
    await memory.add_turn(turn(1))
    await memory.flush()  # the first summary fails; its retry waits 2 s
    assert health(memory) is MemoryHealth.RETRY and len(summariser.calls) == 1
    clock.now = 1.9
    await memory.flush()
    assert len(summariser.calls) == 1  # not due yet: flush does not wait for the backoff
    assert users((await context(memory))["pending_turns"]) == ["q0"]  # nothing is lost

    clock.now = 2.0
    await memory.get_llm_context()  # the memory is used after the backoff: the retry starts
    await memory.flush()
    assert health(memory) is MemoryHealth.RETRY and len(summariser.calls) == 2
    clock.now = 5.9  # the second retry waits 4 s
    await memory.flush()
    assert len(summariser.calls) == 2
    clock.now = 6.0
    await memory.flush()
    assert health(memory) is MemoryHealth.DEGRADED and len(summariser.calls) == 3
    degraded = await context(memory)
    assert degraded == {"recent_turns": [{"user": "q1", "assistant": "a1"}]}  # recent only
    assert [t["user_message"] for t in memory.to_dict()["backlog"]] == ["q0"]

    clock.now = 20.0
    await memory.add_turn(turn(2))  # degraded 14 s ago: too early to try again
    await memory.flush()
    assert len(summariser.calls) == 3
    assert [t["user_message"] for t in memory.to_dict()["backlog"]] == ["q0", "q1"]

    summariser.gate = gate = asyncio.Event()
    summariser.started.clear()
    clock.now = 36.0
    await memory.add_turn(turn(3))  # 30 s since the degradation: recovery starts
    await summariser.started.wait()
    assert health(memory) is MemoryHealth.RECOVERING
    gate.set()
    await memory.flush()
    assert health(memory) is MemoryHealth.HEALTHY
    assert await context(memory) == {
        "recent_turns": [{"user": "q3", "assistant": "a3"}],
        "summary": "q0 q1 q2",
    }
    assert changes == [
        ("healthy", "retry"),
        ("retry", "degraded"),
        ("degraded", "recovering"),
        ("recovering", "healthy"),
    ]


async def test_a_failed_recovery_stays_degraded_and_the_backlog_is_bounded() -> None:
    clock = Clock()
    summariser = Summariser(fail=10)
    cfg = config(
        "rolling_summary",
        zone=1,
        retry_attempts=0,
        recovery_backlog_limit=2,
        degraded_retry_interval_s=10.0,
    )
    memory = DefaultShortTermMemory(config=cfg, summarizer=summariser, time_source=clock)
    for n in range(2):
        await memory.add_turn(turn(n))
    await memory.flush()
    assert health(memory) is MemoryHealth.DEGRADED  # no retries allowed
    for n in range(2, 5):
        await memory.add_turn(turn(n))
    backlog = [t["user_message"] for t in memory.to_dict()["backlog"]]
    assert backlog == ["q2", "q3"]  # the oldest gave way to the limit
    clock.now = 10.0
    await memory.add_turn(turn(5))
    await memory.flush()
    assert health(memory) is MemoryHealth.DEGRADED and len(summariser.calls) == 2


async def test_a_backoff_of_zero_retries_within_flush_until_degraded() -> None:
    summariser = Summariser(fail=10)
    cfg = config("rolling_summary", zone=1, retry_attempts=2, retry_backoff_base_s=0.0)
    memory = DefaultShortTermMemory(config=cfg, summarizer=summariser, time_source=Clock())
    await memory.add_turn(turn(0))
    await memory.add_turn(turn(1))
    await memory.flush()  # as PenguiFlow's flush, it waits through the retries
    assert health(memory) is MemoryHealth.DEGRADED and len(summariser.calls) == 3


async def test_a_summarizer_with_a_bad_reply_counts_as_a_failure() -> None:
    async def bad(request: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"text": "no summary key"}

    cfg = config("rolling_summary", zone=1, retry_backoff_base_s=5.0)
    memory = DefaultShortTermMemory(config=cfg, summarizer=bad, time_source=Clock())
    await memory.add_turn(turn(0))
    await memory.add_turn(turn(1))
    await memory.flush()
    assert health(memory) is MemoryHealth.RETRY


async def test_the_summary_is_capped_keeping_its_end() -> None:
    async def long(request: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"summary": "old " * 50 + "LATEST"}

    budget = MemoryBudget(full_zone_turns=1, summary_max_tokens=5, total_max_tokens=0)
    memory = DefaultShortTermMemory(
        config=config("rolling_summary", budget=budget), summarizer=long
    )
    await memory.add_turn(turn(0))
    await memory.add_turn(turn(1))
    await memory.flush()
    summary = (await context(memory))["summary"]
    assert summary.endswith("LATEST") and default_token_estimator(summary) <= 5


async def test_truncate_summary_ends_when_the_summary_fits_but_the_total_does_not() -> None:
    # PenguiFlow 3.11 loops forever here (its summary already fits summary_max_tokens).
    async def wordy(request: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"summary": "s" * 150}

    budget = MemoryBudget(
        full_zone_turns=1,
        summary_max_tokens=50,
        total_max_tokens=60,
        overflow_policy="truncate_summary",
    )
    memory = DefaultShortTermMemory(
        config=config("rolling_summary", budget=budget), summarizer=wordy
    )
    await memory.add_turn(ConversationTurn("q" * 40, "a"))
    await memory.add_turn(ConversationTurn("r" * 40, "a"))
    await memory.flush()
    assert memory.estimate_tokens() <= 60
    assert users((await context(memory))["recent_turns"]) == ["r" * 40]


async def test_rolling_overflow_policies() -> None:
    async def filled(policy: Any) -> DefaultShortTermMemory:
        budget = MemoryBudget(
            full_zone_turns=2, summary_max_tokens=10, total_max_tokens=40, overflow_policy=policy
        )
        memory = DefaultShortTermMemory(
            config=config("rolling_summary", budget=budget), summarizer=Summariser()
        )
        for n in range(6):
            await memory.add_turn(ConversationTurn(f"question {n}", f"answer {n}"))
            await memory.flush()
        return memory

    for policy in ("truncate_oldest", "truncate_summary"):
        memory = await filled(policy)
        assert memory.estimate_tokens() <= 40
        assert users((await context(memory))["recent_turns"])[-1] == "question 5"
    budget = MemoryBudget(
        full_zone_turns=5, summary_max_tokens=10, total_max_tokens=30, overflow_policy="error"
    )
    strict = DefaultShortTermMemory(
        config=config("rolling_summary", budget=budget), summarizer=Summariser()
    )
    await strict.add_turn(turn(0))
    with pytest.raises(MemoryBudgetExceeded):
        for n in range(1, 10):
            await strict.add_turn(ConversationTurn(f"question {n}" * 3, "answer"))
    assert strict.estimate_tokens() <= 30


# -- to_dict / from_dict, persist / hydrate ----------------------------------------------------


async def test_to_dict_is_penguiflows_format_and_round_trips() -> None:
    memory = DefaultShortTermMemory(
        config=config("rolling_summary", zone=1), summarizer=Summariser()
    )
    digest = TrajectoryDigest(["search"], "- search: ok")
    await memory.add_turn(turn(0, artifacts_shown={"chart": {"n": 1}}, ts=12.5))
    await memory.add_turn(turn(1, trajectory_digest=digest, artifacts_hidden_refs=["blob-1"]))
    await memory.flush()
    state = memory.to_dict()
    assert state["version"] == 1 and state["health"] == "healthy" and state["summary"] == "q0"
    assert state["pending"] == [] and state["backlog"] == []
    assert state["turns"] == [
        {
            "user_message": "q1",
            "assistant_response": "a1",
            "trajectory_digest": {
                "tools_invoked": ["search"],
                "observations_summary": "- search: ok",
                "reasoning_summary": None,
                "artifacts_refs": [],
            },
            "artifacts_shown": {},
            "artifacts_hidden_refs": ["blob-1"],
            "ts": 0.0,
        }
    ]
    assert state["config_snapshot"]["strategy"] == "rolling_summary"
    assert state["config_snapshot"]["budget"]["full_zone_turns"] == 1
    json.dumps(state)  # JSON-ready

    copy = DefaultShortTermMemory(config=config("rolling_summary", zone=1), summarizer=Summariser())
    copy.from_dict(json.loads(json.dumps(state)))
    assert copy.to_dict() == state
    assert await context(copy) == await context(memory)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"version": 2, "health": "healthy"}, "unsupported memory state version 2"),
        ({"health": "healthy"}, "unsupported memory state version None"),
        ({"version": 1, "health": "sleepy"}, "invalid health 'sleepy'"),
        ({"version": 1, "health": "healthy", "turns": "q0"}, "must be a list of turns"),
        ({"version": 1, "health": "healthy", "turns": [1]}, "must be a mapping"),
    ],
)
async def test_from_dict_refuses_other_versions_and_malformed_states(
    state: dict[str, Any], message: str
) -> None:
    memory = DefaultShortTermMemory(config=config())
    await memory.add_turn(turn(0))
    with pytest.raises(ValueError, match=message):
        memory.from_dict(state)
    assert users((await context(memory))["recent_turns"]) == ["q0"]  # unchanged


async def test_from_dict_replaces_the_state_and_discards_a_running_summary() -> None:
    gate = asyncio.Event()
    summariser = Summariser(gate=gate)
    memory = DefaultShortTermMemory(config=config("rolling_summary", zone=1), summarizer=summariser)
    await memory.add_turn(turn(0))
    await memory.add_turn(turn(1))
    await summariser.started.wait()
    other = DefaultShortTermMemory(
        config=config("rolling_summary", zone=1), summarizer=Summariser()
    )
    await other.add_turn(turn(7))
    memory.from_dict(other.to_dict())
    gate.set()
    await memory.flush()
    assert await context(memory) == {"recent_turns": [{"user": "q7", "assistant": "a7"}]}


async def test_persist_and_hydrate_through_an_in_memory_state_store() -> None:
    store = InMemoryStateStore()
    memory = DefaultShortTermMemory(config=config(zone=3))
    for n in range(2):
        await memory.add_turn(turn(n))
    await memory.persist(store, KEY)
    assert await store.load_memory_state(KEY.as_string()) == memory.to_dict()
    await memory.persist(store, "my-own-string")  # PenguiFlow's form: the string as given
    assert await store.load_memory_state("my-own-string") == memory.to_dict()

    restored = DefaultShortTermMemory(config=config(zone=3))
    await restored.hydrate(store, KEY)
    assert await context(restored) == await context(memory)
    await restored.hydrate(store, MemoryKey("acme", "bob", "chat-1"))  # nothing saved: no change
    assert await context(restored) == await context(memory)
    await restored.persist(object(), KEY)  # a store without memory state is skipped
    await restored.hydrate(object(), KEY)


async def test_persist_and_hydrate_through_sqlite_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    async with resolve_driver("state_store", url) as store:
        memory = DefaultShortTermMemory(
            config=config("rolling_summary", zone=1), summarizer=Summariser()
        )
        for n in range(3):
            await memory.add_turn(turn(n))
        await memory.flush()
        await memory.persist(store, KEY)
    async with resolve_driver("state_store", url) as reopened:  # a new process
        again = DefaultShortTermMemory(
            config=config("rolling_summary", zone=1), summarizer=Summariser()
        )
        await again.hydrate(reopened, KEY)
        assert await context(again) == {
            "recent_turns": [{"user": "q2", "assistant": "a2"}],
            "summary": "q0 q1",
        }


# -- callbacks and protocols -------------------------------------------------------------------


async def test_callbacks_run_in_the_background_and_failures_are_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Any] = []
    release = asyncio.Event()

    async def on_turn_added(added: ConversationTurn) -> None:
        seen.append(("turn", added.user_message))
        await release.wait()  # a slow callback does not hold the memory up
        raise RuntimeError("callback bug")

    def on_summary_updated(old: str, new: str) -> None:  # a plain function works too
        seen.append(("summary", old, new))

    cfg = config(
        "rolling_summary",
        zone=1,
        on_turn_added=on_turn_added,
        on_summary_updated=on_summary_updated,
    )
    memory = DefaultShortTermMemory(config=cfg, summarizer=Summariser())
    await memory.add_turn(turn(0))
    await memory.add_turn(turn(1))
    release.set()
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner.memory"):
        await memory.flush()
    assert ("turn", "q0") in seen and ("turn", "q1") in seen
    assert ("summary", "", "q0") in seen
    assert "callback bug" in caplog.text


async def test_default_memory_satisfies_penguiflows_protocols() -> None:
    memory = DefaultShortTermMemory(config=config())
    for protocol in (
        ShortTermMemory,
        ShortTermMemoryPersistence,
        ShortTermMemorySerializable,
        ShortTermMemoryArtifacts,
    ):
        assert isinstance(memory, protocol)
    assert memory.get_artifact("anything") is None
    async with memory:
        pass
    await memory.aclose()  # idempotent


# -- the planner's side: PlannerMemory ---------------------------------------------------------


def planner_memory(short_term_memory: Any, **options: Any) -> PlannerMemory:
    return PlannerMemory.build(
        short_term_memory,
        summarizer_client=options.pop("client", None),
        state_store=options.pop("store", None),
        time_source=options.pop("clock", None),
        **options,
    )


async def remember(memory: PlannerMemory, key: MemoryKey | None, n: int, **kw: Any) -> None:
    await memory.record_turn(
        key,
        user_message=f"q{n}",
        assistant_response=f"a{n}",
        tools_invoked=kw.get("tools", []),
        observations=kw.get("observations", []),
    )


async def shown(memory: PlannerMemory, key: MemoryKey | None) -> list[str]:
    patch = await memory.llm_context_patch(key)
    return users(patch.get("conversation_memory", {}).get("recent_turns", []))


async def test_no_memory_configured_means_none_at_all() -> None:
    for nothing in (None, ShortTermMemoryConfig(), "none"):
        memory = planner_memory(nothing)
        assert not memory.enabled
        assert memory.resolve_key(KEY, {"session_id": "s"}) is None
        assert await memory.llm_context_patch(KEY) == {}
        await remember(memory, KEY, 0)
        await memory.aclose()


def test_keys_resolve_as_in_penguiflow_and_fail_closed() -> None:
    memory = planner_memory(config())
    assert memory.resolve_key(KEY, {"session_id": "other"}) is KEY  # explicit wins
    full = {"tenant_id": "acme", "user_id": "alice", "session_id": "chat-1"}
    assert memory.resolve_key(None, full) == KEY
    assert memory.resolve_key(None, {"session_id": 42}) == MemoryKey("default", "anonymous", "42")
    assert memory.resolve_key(None, {"tenant_id": "acme", "user_id": "alice"}) is None
    assert memory.resolve_key(None, None) is None  # require_explicit_key: no memory
    for blank in ({"session_id": "  "}, {"session_id": "s", "tenant_id": ""}):
        assert memory.resolve_key(None, blank) is None  # a blank part shares nothing
    assert memory.resolve_key(None, {"session_id": {"id": "s"}}) is None
    with pytest.raises(InvalidTypeError, match="memory_key must be a MemoryKey"):
        memory.resolve_key(("acme", "alice", "chat-1"), None)  # type: ignore[arg-type]

    paths = MemoryIsolation(tenant_key="auth.org", user_key="auth.sub", session_key="thread")
    nested = {"auth": {"org": "acme", "sub": "alice"}, "thread": "chat-1"}
    assert key_from_tool_context(nested, paths) == KEY

    lenient = planner_memory(config(isolation=MemoryIsolation(require_explicit_key=False)))
    own = lenient.resolve_key(None, {})
    assert own is not None and own.tenant_id == "default" and own.user_id == "anonymous"
    assert lenient.resolve_key(None, {}) == own  # one key per planner, as in PenguiFlow


async def test_turns_are_remembered_per_key_with_a_digest_and_persisted() -> None:
    store = InMemoryStateStore()
    memory = planner_memory(config(zone=3), store=store)
    bob = MemoryKey("acme", "bob", "chat-1")
    await remember(
        memory,
        KEY,
        0,
        tools=["search", "final_response"],
        observations=[{"hits": ["x" * 500]}, None],
    )
    await remember(memory, bob, 1)
    assert await shown(memory, KEY) == ["q0"] and await shown(memory, bob) == ["q1"]
    patch = await memory.llm_context_patch(KEY)
    digest = patch["conversation_memory"]["recent_turns"][0]["trajectory_digest"]
    assert digest["tools_invoked"] == ["search"]  # the planner's opcodes are not tools
    assert digest["observations_summary"].startswith('- search: {"hits"')
    assert digest["observations_summary"].endswith("…")  # long observations are cut
    saved = await store.load_memory_state(KEY.as_string())
    assert saved is not None and saved["version"] == 1
    assert [t["user_message"] for t in saved["turns"]] == ["q0"]

    restarted = planner_memory(config(zone=3), store=store)  # a new process, same store
    assert await shown(restarted, KEY) == ["q0"]
    await memory.aclose()
    await memory.aclose()  # idempotent
    await restarted.aclose()


async def test_a_session_moving_between_processes_loses_no_turn() -> None:
    store = InMemoryStateStore()
    first, second = (
        planner_memory(config(zone=10), store=store),
        planner_memory(config(zone=10), store=store),
    )
    for n, process in enumerate((first, second, first, second)):
        await process.llm_context_patch(KEY)  # a run starts...
        await remember(process, KEY, n)  # ...and ends
    assert await shown(first, KEY) == ["q0", "q1", "q2", "q3"]


async def test_a_summary_in_progress_survives_the_next_run_reading_the_store() -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    calls: list[Any] = []

    class SlowClient:
        async def complete(self, **kwargs: Any) -> str:
            calls.append(kwargs)
            started.set()
            await gate.wait()
            return json.dumps({"summary": "q0"})

    memory = planner_memory(
        config("rolling_summary", zone=1), client=SlowClient(), store=InMemoryStateStore()
    )
    await remember(memory, KEY, 0)
    await remember(memory, KEY, 1)
    await started.wait()
    await memory.llm_context_patch(KEY)  # the store holds what this process saved: kept
    gate.set()
    await memory.flush()
    patch = await memory.llm_context_patch(KEY)
    assert patch["conversation_memory"]["summary"] == "q0" and len(calls) == 1
    await memory.aclose()


async def test_concurrent_runs_of_one_key_lose_no_turn_and_keys_stay_apart() -> None:
    memory = planner_memory(config(zone=50), store=InMemoryStateStore())
    others = [MemoryKey("acme", f"user{n}", "s") for n in range(5)]

    async def run(key: MemoryKey, n: int) -> None:
        await memory.llm_context_patch(key)
        await remember(memory, key, n)

    await asyncio.gather(
        *(run(KEY, n) for n in range(20)), *(run(k, 100 + i) for i, k in enumerate(others))
    )
    assert sorted(await shown(memory, KEY)) == sorted(f"q{n}" for n in range(20))
    for i, key in enumerate(others):
        assert await shown(memory, key) == [f"q{100 + i}"]


async def test_rolling_summary_through_the_planners_client_is_persisted() -> None:
    def reply(messages: list[LLMMessage]) -> str:
        request = json.loads(messages[-1].content)
        users_ = " ".join(t["user"] for t in request["new_turns"])
        return json.dumps({"summary": f"{request['summary_so_far']} {users_}".strip()})

    store = InMemoryStateStore()
    memory = planner_memory(
        config("rolling_summary", zone=1), client=ScriptedLLMClient([reply] * 5), store=store
    )
    for n in range(3):
        await remember(memory, KEY, n)
    await memory.flush()
    patch = await memory.llm_context_patch(KEY)
    assert patch["conversation_memory"]["summary"] == "q0 q1"
    saved = await store.load_memory_state(KEY.as_string())
    assert saved is not None and saved["summary"] == "q0 q1"  # saved after the summary too
    await memory.aclose()


async def test_summarizer_model_is_built_through_the_llm_adapters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from penguiflow_planner import _llm_calls

    built: list[Any] = []

    def resolve_llm(llm: Any, **options: Any) -> Any:
        built.append(llm)
        return ScriptedLLMClient([json.dumps({"summary": "by the small model"})])

    monkeypatch.setattr(_llm_calls, "resolve_llm", resolve_llm)
    planner_client = ScriptedLLMClient([])  # never asked: the config names its own model
    cfg = config("rolling_summary", zone=1, summarizer_model="openai/gpt-4o-mini")
    memory = planner_memory(cfg, client=planner_client)
    assert built == ["openai/gpt-4o-mini"]
    await remember(memory, KEY, 0)
    await remember(memory, KEY, 1)
    await memory.flush()
    patch = await memory.llm_context_patch(KEY)
    assert patch["conversation_memory"]["summary"] == "by the small model"
    await memory.aclose()


async def test_a_penguiflow_client_writes_summaries_too() -> None:
    class PenguiFlowClient:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        async def complete(
            self,
            *,
            messages: list[dict[str, str]],
            response_format: Any = None,
            stream: bool = False,
            on_stream_chunk: Any = None,
        ) -> tuple[str, float]:
            self.calls.append({"messages": messages, "response_format": response_format})
            return json.dumps({"summary": "they said hello"}), 0.001

    client = PenguiFlowClient()
    memory = planner_memory(config("rolling_summary", zone=1), client=client)
    await remember(memory, KEY, 0)
    await remember(memory, KEY, 1)
    await memory.flush()
    patch = await memory.llm_context_patch(KEY)
    assert patch["conversation_memory"]["summary"] == "they said hello"
    call = client.calls[0]
    assert all(isinstance(m, dict) for m in call["messages"])
    assert call["response_format"]["type"] == "json_schema"
    await memory.aclose()


async def test_a_users_memory_object_serves_every_key() -> None:
    class Notebook:
        """A PenguiFlow ShortTermMemory written by a user."""

        def __init__(self) -> None:
            self.turns: list[ConversationTurn] = []
            self.persisted: list[str] = []
            self.hydrated: list[str] = []

        @property
        def health(self) -> MemoryHealth:
            return MemoryHealth.HEALTHY

        async def add_turn(self, turn: ConversationTurn) -> None:
            self.turns.append(turn)

        async def get_llm_context(self) -> Mapping[str, Any]:
            return {"conversation_memory": {"notes": [t.user_message for t in self.turns]}}

        def estimate_tokens(self) -> int:
            return 0

        async def flush(self) -> None:
            return None

        async def persist(self, store: Any, key: str) -> None:
            self.persisted.append(key)

        async def hydrate(self, store: Any, key: str) -> None:
            self.hydrated.append(key)

    notebook = Notebook()
    memory = planner_memory(notebook, store=InMemoryStateStore())
    assert memory.enabled
    await remember(memory, KEY, 0)
    assert await memory.llm_context_patch(KEY) == {"conversation_memory": {"notes": ["q0"]}}
    # our injective string, not PenguiFlow's composite()
    assert notebook.persisted == notebook.hydrated == [KEY.as_string()]
    await memory.aclose()
    assert notebook.turns  # a memory passed in is the caller's: not cleared or closed


async def test_memory_strategies_by_object_and_by_driver_name() -> None:
    by_object = planner_memory(TruncationMemory(max_turns=2))
    by_name = planner_memory("truncation", options={"max_turns": 2})
    for memory in (by_object, by_name):
        for n in range(3):
            await remember(memory, KEY, n, tools=["search"], observations=["ok"])
        patch = await memory.llm_context_patch(KEY)
        turns = patch["conversation_memory"]["recent_turns"]
        assert users(turns) == ["q1", "q2"]
        assert turns[0]["trajectory_digest"]["tools_invoked"] == ["search"]
        await memory.aclose()


def test_bad_memory_arguments_say_what_to_give() -> None:
    with pytest.raises(InvalidTypeError, match="short_term_memory must be None, a Short"):
        planner_memory(42)
    with pytest.raises(ConfigurationError, match="needs an LLM to write summaries"):
        planner_memory(config("rolling_summary"))
    with pytest.raises(ConfigurationError, match="needs an LLM to write summaries"):
        planner_memory("rolling_summary")
    with pytest.raises(ConfigurationError, match="memory options apply to a memory strategy"):
        planner_memory(config(), options={"max_turns": 3})


async def test_a_failing_memory_never_fails_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @property
        def health(self) -> MemoryHealth:
            return MemoryHealth.HEALTHY

        async def add_turn(self, turn: ConversationTurn) -> None:
            raise RuntimeError("disk full")

        async def get_llm_context(self) -> Mapping[str, Any]:
            raise RuntimeError("disk gone")

        def estimate_tokens(self) -> int:
            return 0

        async def flush(self) -> None:
            return None

    memory = planner_memory(Broken())
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner.memory"):
        assert await memory.llm_context_patch(KEY) == {}
    assert "disk gone" in caplog.text
    # A failed write reaches the planner, which keeps the answer and reports it in
    # metadata["memory_error"] (test_robustness: ..._write_fails_keeps_the_answer...).
    with pytest.raises(RuntimeError, match="disk full"):
        await remember(memory, KEY, 0)


async def test_aclose_cancels_the_summaries_it_owns() -> None:
    gate = asyncio.Event()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    class Stuck:
        async def complete(self, **kwargs: Any) -> str:
            started.set()
            try:
                await gate.wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return '{"summary": "late"}'

    memory = planner_memory(config("rolling_summary", zone=1), client=Stuck())
    await remember(memory, KEY, 0)
    await remember(memory, KEY, 1)
    await started.wait()
    await memory.aclose()
    assert cancelled.is_set()
    assert await memory.llm_context_patch(KEY) == {}  # closed: no memory any more
