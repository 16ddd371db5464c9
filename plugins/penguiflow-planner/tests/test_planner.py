"""ReactPlanner scenarios with the scripted LLM client (the model's replies are scripted)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from penguiflow_planner import (
    PlannerBudgets,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    ReflectionConfig,
    Trajectory,
)
from pydantic import BaseModel
from tools import catalog

import penguiflow.hookspecs as kernel_hookspecs
from penguiflow.hookspecs import hookimpl
from penguiflow.llm import LLMMessage, LLMUsage, ScriptedLLMClient
from penguiflow.memory import MemoryKey, TruncationMemory
from penguiflow.plugins import DriverNotFoundError, PluginSettings, load_hooks
from penguiflow.state.sqlite import SQLiteStateStore
from penguiflow.testing import DistributionSite as Site
from penguiflow.testing import HookPluginConformance
from penguiflow.testing import distribution_site as site_on_path


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from site_on_path(tmp_path, monkeypatch)


def act(node: str | None, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def answer(text: Any) -> str:
    return json.dumps({"thought": "done", "next_node": None, "args": {"answer": text}})


def planner(replies: list[Any], **options: Any) -> tuple[ReactPlanner, ScriptedLLMClient]:
    llm = ScriptedLLMClient(replies)
    return ReactPlanner(llm, catalog(), **options), llm


async def test_a_tool_call_then_an_answer_with_a_trajectory() -> None:
    plan, llm = planner([act("search", text="penguins"), answer("Found: doc about penguins")])
    result = await plan.run("What do we know about penguins?", context={"tenant": "acme"})
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload == "Found: doc about penguins"
    trajectory = Trajectory.model_validate(result.metadata["trajectory"])
    assert [s.kind for s in trajectory.steps] == ["tool", "finish"]
    assert trajectory.steps[0].observation == {"titles": ["doc about penguins"]}
    assert Trajectory.from_json(trajectory.to_json()) == trajectory
    second_prompt = llm.calls[1].messages
    assert second_prompt[0].role == "system" and '"name": "search"' in second_prompt[0].content
    assert 'Context: {"tenant": "acme"}' in second_prompt[1].content
    assert second_prompt[-1].content == 'Observation: {"titles": ["doc about penguins"]}'


async def test_a_weak_models_broken_json_is_repaired() -> None:
    replies = [
        'Sure! I\'ll search. {"thought": "x", "next_node": "search", "args": {"text": ',
        # two objects: the arguments first, the action name after
        '{"args": {"text": "penguins"}} {"next_node": "search", "thought": "search it"}',
        '{"thought": "t", "next_node": "search", "args": {"text": "<query>"}}',  # placeholder
        act("search", text="emperor penguins"),
        '{"thought": "a"} ' + answer("Emperors."),  # several objects: the valid one wins
    ]
    plan, llm = planner(replies)
    result = await plan.run("penguins?")
    assert isinstance(result, PlannerFinish) and result.ok and result.payload == "Emperors."
    kinds = [s.kind for s in Trajectory.model_validate(result.metadata["trajectory"]).steps]
    assert kinds == ["repair", "tool", "repair", "tool", "finish"]
    repair_prompt = llm.calls[1].messages[-1].content
    assert "no JSON object found" in repair_prompt
    placeholder_feedback = llm.calls[3].messages[-1].content
    assert "next_node.args.text is a placeholder ('<query>')" in placeholder_feedback


async def test_argument_errors_and_unknown_tools_are_fed_back() -> None:
    plan, llm = planner(
        [act("weather", town="Oslo"), act("teleport"), act("weather", city="Oslo"), answer("21.5C")]
    )
    result = await plan.run("weather in Oslo?")
    assert isinstance(result, PlannerFinish) and result.ok
    assert "next_node.args.city: Field required (tool weather)" in llm.calls[1].messages[-1].content
    assert (
        "unknown tool 'teleport'; the tools are: refund, search, stall, weather"
        in llm.calls[2].messages[-1].content
    )


async def test_repairs_run_out_with_an_explicit_failure() -> None:
    plan, _ = planner(["no json at all"] * 3, max_repairs=2)
    result = await plan.run("anything")
    assert isinstance(result, PlannerFinish) and not result.ok
    assert result.reason == "repair_failed"
    assert result.payload["last_reply"] == "no json at all"
    assert "unusable 3 times" in result.metadata["error"]


async def test_wrong_answer_types() -> None:
    class Verdict(BaseModel):
        label: str
        score: float

    plan, llm = planner(
        [answer({"label": "good"}), answer({"label": "good", "score": 0.9})], answer_model=Verdict
    )
    result = await plan.run("judge it")
    assert isinstance(result, PlannerFinish) and result.payload == {"label": "good", "score": 0.9}
    assert "args.answer.score: Field required (Verdict)" in llm.calls[1].messages[-1].content
    plan, llm = planner([answer(["a", "b"]), answer(42)])
    result = await plan.run("count")
    assert isinstance(result, PlannerFinish) and result.payload == "42"
    assert "args.answer must be text, got list" in llm.calls[1].messages[-1].content


async def test_budgets_end_runs_with_their_reason_and_a_best_effort_answer() -> None:
    plan, _ = planner(
        [act("search", text=f"q{i}") for i in range(5)], budgets=PlannerBudgets(max_iters=2)
    )
    result = await plan.run("keep searching")
    assert isinstance(result, PlannerFinish) and result.reason == "max_iters"
    assert result.payload == {"titles": ["doc about q1"]}  # the last observation
    plan, _ = planner(
        [
            act("search", text="a"),
            json.dumps({"plan": [{"node": "search", "args": {"text": "b"}}] * 3}),
        ],
        budgets=PlannerBudgets(hop_budget=2),
    )
    result = await plan.run("search a lot")
    assert isinstance(result, PlannerFinish) and result.reason == "hop_budget"
    assert result.metadata["planned"] == 3 and result.metadata["usage"]["hops"] == 1

    def costly(messages: list[LLMMessage]) -> str:
        return act("search", text="x")

    llm = ScriptedLLMClient([costly] * 5)
    original = llm.complete

    async def priced(**kwargs: Any) -> Any:
        reply = await original(**kwargs)
        return reply.model_copy(
            update={"cost_usd": 0.4, "usage": LLMUsage(input_tokens=500, output_tokens=100)}
        )

    llm.complete = priced  # type: ignore[method-assign]
    result = await ReactPlanner(llm, catalog(), budgets=PlannerBudgets(cost_budget_usd=1.0)).run(
        "x"
    )
    assert isinstance(result, PlannerFinish) and result.reason == "cost_budget"
    assert result.metadata["usage"]["iterations"] == 3  # 0.4 + 0.4 + 0.4 >= 1.0
    llm = ScriptedLLMClient([costly] * 5)
    llm.complete = priced  # type: ignore[method-assign]
    result = await ReactPlanner(llm, catalog(), budgets=PlannerBudgets(token_budget=1000)).run("x")
    assert isinstance(result, PlannerFinish) and result.reason == "token_budget"


async def test_deadline_ends_a_run_and_a_tool_timeout_is_an_observation() -> None:
    plan, _ = planner(
        [act("stall", text="x"), act("stall", text="y"), answer("never")],
        budgets=PlannerBudgets(deadline_s=0.3),
    )
    result = await plan.run("wait for it")
    assert isinstance(result, PlannerFinish) and result.reason == "deadline"
    first_error = Trajectory.model_validate(result.metadata["trajectory"]).steps[0].error
    assert first_error == "TimeoutError: timed out after 0.2s"


class FakeClock:
    """Stands in for the budgets' `time` module: the run's clock moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


async def test_pause_restart_resume_with_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from penguiflow_planner import _budgets

    clock = FakeClock()
    monkeypatch.setattr(_budgets, "time", clock)
    url = f"sqlite:///{tmp_path / 'planner.db'}"
    store = SQLiteStateStore(url)
    first, _ = planner(
        [act("refund", amount=25.0)], state_store=store, budgets=PlannerBudgets(deadline_s=5)
    )
    paused = await first.run("refund order 7", context={"order": 7})
    assert isinstance(paused, PlannerPause) and paused.reason == "approve refund"
    assert paused.payload == {"amount": 25.0}
    await store.close()
    clock.now += 3_600  # an hour paused: not charged to the 5 s deadline

    reopened = SQLiteStateStore(url)  # a new process: new store, new planner
    second, llm = planner(
        [answer("Refund approved and sent.")],
        state_store=reopened,
        budgets=PlannerBudgets(deadline_s=5),
    )
    result = await second.resume(paused.token, {"approved": True})
    assert isinstance(result, PlannerFinish) and result.ok  # not ended by the deadline
    # Only running time is charged, and this clock did not move while the run ran.
    assert result.metadata["usage"]["hops"] == 1 and result.metadata["usage"]["elapsed_s"] == 0
    assert llm.calls[0].messages[-1].content == 'Human decision: {"approved": true}'
    with pytest.raises(KeyError, match="unknown or was already used"):
        await second.resume(paused.token, {"approved": True})
    await reopened.close()


async def test_a_parallel_plan_with_a_failing_branch_reaches_the_join() -> None:
    plan_reply = json.dumps(
        {
            "thought": "both at once",
            "plan": [
                {"node": "weather", "args": {"city": "Oslo"}},
                {"node": "weather", "args": {"city": "Atlantis"}},
            ],
            "join": "append",
        }
    )
    plan, llm = planner([plan_reply, answer("Oslo 21.5C; Atlantis unknown")])
    result = await plan.run("weather in Oslo and Atlantis")
    assert isinstance(result, PlannerFinish) and result.ok
    step = Trajectory.model_validate(result.metadata["trajectory"]).steps[0]
    assert step.kind == "parallel" and step.observation["failure_count"] == 1
    failed = step.observation["branches"][1]
    assert failed["ok"] is False and failed["error"] == "no weather station in Atlantis"
    assert "no weather station in Atlantis" in llm.calls[1].messages[-1].content


async def test_a_human_gated_join_pauses_the_run() -> None:
    plan_reply = json.dumps(
        {
            "plan": [
                {"node": "search", "args": {"text": "a"}},
                {"node": "search", "args": {"text": "b"}},
            ],
            "join": "human_gated",
        }
    )
    plan, _ = planner([plan_reply, answer("picked a")])
    paused = await plan.run("search two ways")
    assert isinstance(paused, PlannerPause) and paused.payload["success_count"] == 2
    result = await plan.resume(paused.token, {"choose": "a"})
    assert isinstance(result, PlannerFinish) and result.payload == "picked a"


async def test_two_sessions_at_once_keep_separate_memories() -> None:
    def reply(messages: list[LLMMessage]) -> str:
        remembered = [m.content for m in messages if m.role == "assistant"]
        question = messages[-1].content
        return answer(f"{question} | remembered: {remembered}")

    llm = ScriptedLLMClient([reply] * 5)
    shared = ReactPlanner(llm, catalog(), memory=TruncationMemory(max_turns=5))
    alice = MemoryKey(tenant_id="t", user_id="alice", session_id="s")
    bob = MemoryKey(tenant_id="t", user_id="bob", session_id="s")
    await asyncio.gather(
        shared.run("alice 1", memory_key=alice), shared.run("bob 1", memory_key=bob)
    )
    second_alice, second_bob = await asyncio.gather(
        shared.run("alice 2", memory_key=alice), shared.run("bob 2", memory_key=bob)
    )
    assert isinstance(second_alice, PlannerFinish) and isinstance(second_bob, PlannerFinish)
    assert "alice 1 | remembered: []" in second_alice.payload and "bob" not in second_alice.payload
    assert "bob 1 | remembered: []" in second_bob.payload and "alice" not in second_bob.payload
    nobody = await shared.run("no key")  # no key: no memory at all (fail closed)
    assert isinstance(nobody, PlannerFinish) and nobody.payload.endswith("remembered: []")


async def test_reflection_sends_a_rejected_answer_back_once() -> None:
    replies = [
        answer("draft"),
        json.dumps({"approve": False, "feedback": "cite a source"}),
        act("search", text="source"),
        answer("final with source"),
        json.dumps({"approve": True}),
    ]
    plan, _ = planner(replies, reflection=ReflectionConfig(max_rounds=2))
    result = await plan.run("answer with a source")
    assert isinstance(result, PlannerFinish) and result.payload == "final with source"
    kinds = [s.kind for s in Trajectory.model_validate(result.metadata["trajectory"]).steps]
    assert kinds == ["reflection", "tool", "finish"]


COUNT_TITLES = """
from penguiflow.joins import ToolJoin


def count_titles(name, **options):
    return ToolJoin(lambda results: sum(len(r["titles"]) for r in results), name=name)
"""


async def test_a_third_party_join_strategy_from_a_plugin_and_events_and_streaming(
    site: Site,
) -> None:
    # A join strategy is a driver: an entry point of `penguiflow.join_strategies`.
    site.install(
        "pf-test-count-titles",
        {"penguiflow.join_strategies": {"count_titles": "pf_test_count_titles:count_titles"}},
        {"pf_test_count_titles": COUNT_TITLES},
    )
    plan_reply = json.dumps(
        {"plan": [{"node": "search", "args": {"text": "a"}}] * 3, "join": "count_titles"}
    )
    events: list[str] = []
    chunks: list[tuple[str, bool]] = []
    plan, llm = planner(
        [plan_reply, answer("three titles " * 5)],
        event_callback=lambda event: events.append(event.kind),
    )
    result = await plan.run(
        "count", on_answer_chunk=lambda piece, done: chunks.append((piece, done))
    )
    assert isinstance(result, PlannerFinish) and result.ok
    assert "count_titles" in llm.calls[0].messages[0].content
    assert Trajectory.model_validate(result.metadata["trajectory"]).steps[0].observation == 3
    assert events[:2] == ["step_start", "tool_call"] and events[-1] == "finish"
    assert "".join(p for p, _ in chunks) == "three titles " * 5 and chunks[-1][1] is True


async def test_a_join_strategy_nobody_installed_says_what_is_installed() -> None:
    plan, _ = planner([answer("x")])
    assert "append" in plan._join_names() and "vote" not in plan._join_names()
    with pytest.raises(DriverNotFoundError, match="no join strategy for name 'vote'; installed"):
        plan._strategy("vote")


class SinkPlugin:
    """A third-party plugin implementing the hook the planner declares."""

    def __init__(self) -> None:
        self.hooked: list[Any] = []

    @hookimpl
    def penguiflow_planner_sinks(self, planner: Any) -> list[Any]:
        async def sink(event: Any) -> None:
            self.hooked.append(event)

        return [sink]


class TestPlannerHookPlugin(HookPluginConformance):
    def make_plugin(self) -> Any:
        from penguiflow_planner import hooks

        return hooks


class TestAPluginImplementingThePlannersHook(HookPluginConformance):
    """Accepted: the installed planner declares `penguiflow_planner_sinks`."""

    def make_plugin(self) -> Any:
        return SinkPlugin()


def test_the_planner_declares_its_hooks_through_its_hook_plugin() -> None:
    host = load_hooks(PluginSettings(strict=True))
    assert any(r.name == "penguiflow-planner" and r.status == "loaded" for r in host.records)
    assert host.hook.penguiflow_planner_sinks.has_spec()
    assert not hasattr(kernel_hookspecs, "penguiflow_planner_sinks")


async def test_planner_events_reach_hook_sinks_and_middlewares() -> None:
    received: list[Any] = []
    plugin = SinkPlugin()
    host = load_hooks(PluginSettings())
    host.manager.register(plugin, name="test-sinks")

    async def middleware(event: Any) -> None:
        received.append(event)

    plan, _ = planner(
        ["not json", act("search", text="x"), answer("ok")],
        plugin_host=host,
        middlewares=[middleware],
    )
    result = await plan.run("observe me")
    assert isinstance(result, PlannerFinish)
    types = [e.event_type for e in received]
    assert types[:3] == ["planner_step_start", "planner_repair", "planner_step_start"]
    assert "planner_tool_call" in types and types[-1] == "planner_finish"
    assert [e.event_type for e in plugin.hooked] == types
    assert {e.trace_id for e in received} == {result.metadata["run_id"]}
    tool_call = next(e for e in received if e.event_type == "planner_tool_call")
    assert tool_call.node_name == "search"


async def test_sinks_reach_a_host_without_the_planners_hook_plugin() -> None:
    """A host built with the planner's hook plugin disabled still gets the planner's specs
    before the planner calls its hook."""
    plugin = SinkPlugin()
    host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})), extra=[plugin])
    assert not host.hook.penguiflow_planner_sinks.has_spec()
    plan, _ = planner([answer("ok")], plugin_host=host)
    assert isinstance(await plan.run("q"), PlannerFinish)
    assert host.hook.penguiflow_planner_sinks.has_spec()
    assert [e.event_type for e in plugin.hooked][-1] == "planner_finish"


async def test_a_tool_whose_output_breaks_its_contract_is_a_failed_step() -> None:
    from pydantic import BaseModel as Model

    from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool

    class In(Model):
        n: int

    class Out(Model):
        doubled: int

    @tool(desc="Double a number (badly).")
    async def double(message: In, ctx: Any) -> Any:
        return {"tripled": message.n * 3}

    registry = ModelRegistry()
    registry.register("double", In, Out)
    specs = build_catalog(
        [Node(double, name="double", policy=NodePolicy(validate="both"))], registry
    )
    llm = ScriptedLLMClient([act("double", n=2), answer("could not")])
    result = await ReactPlanner(llm, specs).run("double 2")
    assert isinstance(result, PlannerFinish)
    step = Trajectory.model_validate(result.metadata["trajectory"]).steps[0]
    assert step.error is not None and step.error.startswith("ValidationError")
    assert "doubled" in step.error


def test_react_planner_is_importable_from_penguiflow() -> None:
    from penguiflow import PlannerFinish as Finish
    from penguiflow import ReactPlanner as Planner

    assert Planner is ReactPlanner and Finish is PlannerFinish


def test_the_planner_demo_runs() -> None:
    import subprocess
    import sys

    demo = Path(__file__).resolve().parents[3] / "examples" / "planner_demo.py"
    done = subprocess.run(
        [sys.executable, str(demo)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "paused: approve the booking" in done.stdout
    assert "answer_complete: Lisbon (24C, sunny) is booked for 2 nights." in done.stdout
    assert "- repair:" in done.stdout and "no forecast for Atlantis" in done.stdout


async def test_a_tools_circuit_breaker_is_kept_across_steps() -> None:
    from tools import City, Weather, weather

    from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog
    from penguiflow.node import CircuitBreakerPolicy

    registry = ModelRegistry()
    registry.register("weather", City, Weather)
    policy = NodePolicy(validate="none", circuit_breaker=CircuitBreakerPolicy(2, 60.0))
    specs = build_catalog([Node(weather, name="weather", policy=policy)], registry)
    down = act("weather", city="Atlantis")
    llm = ScriptedLLMClient([down, down, act("weather", city="Oslo"), answer("gave up")])
    result = await ReactPlanner(llm, specs).run("weather?")
    assert isinstance(result, PlannerFinish)
    errors = [s.error for s in Trajectory.model_validate(result.metadata["trajectory"]).steps]
    assert errors[0] == "ValueError: no weather station in Atlantis"
    assert errors[2] is not None and errors[2].startswith("CircuitOpen: circuit open after 2")
