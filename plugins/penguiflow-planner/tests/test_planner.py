"""ReactPlanner scenarios with the scripted LLM client (the model's replies are scripted),
written against PenguiFlow 3.11's API: `ReactPlanner(llm_client=..., catalog=...)`,
`run(query, llm_context=..., tool_context=...)`, `resume(token, user_input)`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from penguiflow_planner import (
    PlannerBudgets,
    PlannerEvent,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    ReflectionConfig,
    Trajectory,
    TrajectoryStep,
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


def act(node: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def answer(text: Any) -> str:
    return json.dumps({"thought": "done", "next_node": "final_response", "args": {"answer": text}})


def parallel(steps: list[tuple[str, dict[str, Any]]], join: Any = None) -> str:
    args: dict[str, Any] = {"steps": [{"node": node, "args": a} for node, a in steps]}
    if join is not None:
        args["join"] = join
    return json.dumps({"thought": "at once", "next_node": "parallel", "args": args})


def planner(replies: list[Any], **options: Any) -> tuple[ReactPlanner, ScriptedLLMClient]:
    llm = ScriptedLLMClient(replies)
    return ReactPlanner(llm_client=llm, catalog=catalog(), **options), llm


def steps_of(result: PlannerFinish) -> list[TrajectoryStep]:
    return [TrajectoryStep.from_dump(step) for step in result.metadata["steps"]]


def last_prompt(llm: ScriptedLLMClient, call: int) -> str:
    return llm.calls[call].messages[-1].content


async def test_a_tool_call_then_an_answer_with_a_trajectory() -> None:
    plan, llm = planner([act("search", text="penguins"), answer("Found: doc about penguins")])
    secret = object()  # tool_context holds what is not JSON and never reaches the model
    result = await plan.run(
        "What do we know about penguins?",
        llm_context={"tenant": "acme"},
        tool_context={"client": secret},
    )
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.reason == "answer_complete" and result.finish_reason == "answer_complete"
    assert result.payload["raw_answer"] == "Found: doc about penguins"
    assert result.metadata["step_count"] == 1
    (step,) = steps_of(result)
    assert step.action.next_node == "search" and step.action.args == {"text": "penguins"}
    assert step.observation == {"titles": ["doc about penguins"]} and step.error is None
    assert [s.dump() for s in steps_of(result)] == result.metadata["steps"]
    trajectory = Trajectory(query="q", llm_context={"tenant": "acme"}, steps=steps_of(result))
    assert Trajectory.from_serialised(json.loads(json.dumps(trajectory.serialise()))) == trajectory
    second_prompt = llm.calls[1].messages
    assert second_prompt[0].role == "system" and "- search: Search documents by text." in (
        second_prompt[0].content
    )
    assert second_prompt[1].content == json.dumps(
        {"context": {"tenant": "acme"}, "query": "What do we know about penguins?"}
    )
    assert second_prompt[-1].content == '{"observation": {"titles": ["doc about penguins"]}}'
    assert not any("client" in m.content for call in llm.calls for m in call.messages[1:])


async def test_a_weak_models_broken_json_is_repaired() -> None:
    replies = [
        'Sure! I\'ll search. {"thought": "x", "next_node": "search", "args": {"text": ',
        '{"thought": "t", "next_node": "search", "args": {"text": "<query>"}}',  # placeholder
        act("search", text="emperor penguins"),
        '{"thought": "a"} ' + answer("Emperors."),  # several objects: the valid one wins
    ]
    events: list[PlannerEvent] = []
    plan, llm = planner(replies, event_callback=events.append)
    result = await plan.run("penguins?")
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload["raw_answer"] == "Emperors."
    # Unparsable replies are repair rounds, not steps: only the tool call is a step.
    (step,) = steps_of(result)
    assert step.action.args == {"text": "emperor penguins"} and step.error is None
    repairs = [e.extra["errors"] for e in events if e.event_type == "planner_repair_attempt"]
    assert len(repairs) == 2 and result.metadata["repair_attempts"] == 2
    assert "no JSON object found" in repairs[0][0] and "no JSON object found" in last_prompt(llm, 1)
    placeholder = "args.text is a placeholder ('<query>')"
    assert placeholder in repairs[1][0] and placeholder in last_prompt(llm, 2)
    assert len(llm.calls) == 4


async def test_an_action_split_over_two_objects_is_merged() -> None:
    # two objects: the arguments first, the action name after
    split = '{"args": {"text": "penguins"}} {"next_node": "search", "thought": "search it"}'
    plan, _ = planner([split, answer("done")])
    result = await plan.run("penguins?")
    assert isinstance(result, PlannerFinish) and result.ok
    (step,) = steps_of(result)
    assert step.action.next_node == "search" and step.action.args == {"text": "penguins"}
    assert step.error is None and step.observation == {"titles": ["doc about penguins"]}


async def test_argument_errors_and_unknown_tools_are_error_steps_the_model_sees() -> None:
    plan, llm = planner(
        [act("weather", town="Oslo"), act("teleport"), act("weather", city="Oslo"), answer("21.5C")]
    )
    result = await plan.run("weather in Oslo?")
    assert isinstance(result, PlannerFinish) and result.ok
    errors = [s.error for s in steps_of(result)]
    assert errors[0] is not None and errors[0].startswith("invalid arguments for tool 'weather'")
    assert "city" in errors[0] and errors[0] in last_prompt(llm, 1)
    assert errors[1] == (
        "tool 'teleport' is not in the catalog. Choose one of: refund, search, stall, weather."
    )
    assert json.dumps({"error": errors[1]}) == last_prompt(llm, 2)
    assert errors[2] is None and result.metadata["args_invalid_count"] == 1


async def test_repairs_run_out_with_an_explicit_failure() -> None:
    plan, _ = planner(["no json at all"] * 3, repair_attempts=2)
    result = await plan.run("anything")
    assert isinstance(result, PlannerFinish) and not result.ok
    assert result.reason == "no_path" and result.finish_reason == "repair_failed"
    assert result.payload["last_reply"] == "no json at all"
    assert "unusable 3 times" in result.metadata["error"]


async def test_wrong_answer_types() -> None:
    class Verdict(BaseModel):
        label: str
        score: float

    def structured(value: dict[str, Any]) -> str:
        return json.dumps(
            {"next_node": "final_response", "args": {"answer": "judged", "structured": value}}
        )

    plan, llm = planner(
        # the retry the planner asks for is a reply holding only the structured part
        [
            structured({"label": "good"}),
            json.dumps({"structured": {"label": "good", "score": 0.9}}),
        ],
        final_response_model=Verdict,
    )
    result = await plan.run("judge it")
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload["structured"] == {"label": "good", "score": 0.9}
    assert "(score: Field required)" in last_prompt(llm, 1)
    assert result.payload["warnings"] == []
    plan, llm = planner([answer(["a", "b"]), answer(42)])
    result = await plan.run("count")
    assert isinstance(result, PlannerFinish) and result.payload["raw_answer"] == "42"
    assert "args.answer must be text, got list" in last_prompt(llm, 1)


async def test_budgets_end_runs_with_their_reason_and_a_best_effort_answer() -> None:
    plan, _ = planner(
        [act("search", text=f"q{i}") for i in range(5)], budgets=PlannerBudgets(max_iters=2)
    )
    result = await plan.run("keep searching")
    assert isinstance(result, PlannerFinish) and result.reason == "no_path"
    assert result.finish_reason == "max_iters"
    assert result.payload == {"titles": ["doc about q1"]}  # the last observation
    assert result.metadata["step_count"] == 2


async def test_a_spent_hop_budget_is_an_error_step_then_ends_the_run() -> None:
    three = parallel([("search", {"text": "b"})] * 3)
    plan, llm = planner(
        [act("search", text="a"), three, answer("only a")], budgets=PlannerBudgets(hop_budget=2)
    )
    result = await plan.run("search a lot")
    assert isinstance(result, PlannerFinish) and result.ok  # told, the model answered
    error = steps_of(result)[1].error
    assert error == (
        "hop budget exhausted: 2 tool calls allowed, 1 used, this action needs 3; "
        "answer now with final_response"
    )
    assert error in last_prompt(llm, 2) and result.metadata["usage"]["hops"] == 1
    plan, _ = planner(
        [act("search", text="a"), three, three], max_iters=3, hop_budget=2
    )  # the model never answers
    result = await plan.run("search a lot")
    assert isinstance(result, PlannerFinish) and result.reason == "budget_exhausted"
    assert result.finish_reason == "hop_budget" and result.metadata["usage"]["hops"] == 1
    assert result.metadata["constraints"]["hop_exhausted"] is True


def priced_client(cost_usd: float, tokens: tuple[int, int]) -> ScriptedLLMClient:
    def costly(messages: list[LLMMessage]) -> str:
        return act("search", text="x")

    llm = ScriptedLLMClient([costly] * 5)
    original = llm.complete

    async def priced(**kwargs: Any) -> Any:
        reply = await original(**kwargs)
        usage = LLMUsage(input_tokens=tokens[0], output_tokens=tokens[1])
        return reply.model_copy(update={"cost_usd": cost_usd, "usage": usage})

    llm.complete = priced  # type: ignore[method-assign]
    return llm


async def test_cost_and_token_budgets_end_runs() -> None:
    llm = priced_client(0.4, (500, 100))
    budgets = PlannerBudgets(cost_budget_usd=1.0)
    result = await ReactPlanner(llm_client=llm, catalog=catalog(), budgets=budgets).run("x")
    assert isinstance(result, PlannerFinish) and result.reason == "budget_exhausted"
    assert result.finish_reason == "cost_budget"
    assert result.metadata["usage"]["llm_calls"] == 3  # 0.4 + 0.4 + 0.4 >= 1.0
    assert result.metadata["cost"]["total_cost_usd"] == pytest.approx(1.2)
    llm = priced_client(0.4, (500, 100))
    budgets = PlannerBudgets(max_tokens=1000)
    result = await ReactPlanner(llm_client=llm, catalog=catalog(), budgets=budgets).run("x")
    assert isinstance(result, PlannerFinish) and result.reason == "budget_exhausted"
    assert result.finish_reason == "token_budget"
    assert result.metadata["usage"]["llm_calls"] == 2 and result.metadata["usage"]["tokens"] == 1200


async def test_deadline_ends_a_run_and_a_tool_timeout_is_an_observation() -> None:
    plan, _ = planner(
        [act("stall", text="x"), act("stall", text="y"), answer("never")],
        budgets=PlannerBudgets(deadline_s=0.3),
    )
    result = await plan.run("wait for it")
    assert isinstance(result, PlannerFinish) and result.reason == "budget_exhausted"
    assert result.finish_reason == "deadline"
    assert result.metadata["constraints"]["deadline_triggered"] is True
    first_error = result.metadata["steps"][0]["error"]
    assert first_error == "tool 'stall' raised TimeoutError: timed out after 0.2s"


class FakeClock:
    """The planner's `time_source`: the run's clock moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


async def test_pause_restart_resume_with_sqlite(tmp_path: Path) -> None:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path / 'planner.db'}"
    store = SQLiteStateStore(url)
    first, _ = planner(
        [act("refund", amount=25.0)],
        state_store=store,
        deadline_s=5,
        time_source=clock.monotonic,
    )
    paused = await first.run("refund order 7", llm_context={"order": 7})
    assert isinstance(paused, PlannerPause) and paused.reason == "approval_required"
    assert paused.payload == {"amount": 25.0}
    await store.aclose()
    clock.now += 3_600  # an hour paused: not charged to the 5 s deadline

    reopened = SQLiteStateStore(url)  # a new process: new store, new planner
    second, llm = planner(
        [answer("Refund approved and sent.")],
        state_store=reopened,
        deadline_s=5,
        time_source=clock.monotonic,
    )
    result = await second.resume(paused.resume_token, "approved")
    assert isinstance(result, PlannerFinish) and result.ok  # not ended by the deadline
    assert result.payload["raw_answer"] == "Refund approved and sent."
    # Only running time is charged, and this clock did not move while the run ran.
    assert result.metadata["usage"]["hops"] == 1 and result.metadata["usage"]["elapsed_s"] == 0
    # The paused tool does not continue: the model plans again, seeing the human's input.
    assert last_prompt(llm, 0) == "The user answered the pause: approved"
    paused_step = steps_of(result)[0]
    assert paused_step.action.next_node == "refund"
    assert paused_step.observation == {"pause": "approval_required", "payload": {"amount": 25.0}}
    with pytest.raises(KeyError, match="unknown or was already used"):
        await second.resume(paused.resume_token, "approved")
    await reopened.aclose()


async def test_a_parallel_plan_with_a_failing_branch() -> None:
    plan_reply = parallel([("weather", {"city": "Oslo"}), ("weather", {"city": "Atlantis"})])
    plan, llm = planner([plan_reply, answer("Oslo 21.5C; Atlantis unknown")])
    result = await plan.run("weather in Oslo and Atlantis")
    assert isinstance(result, PlannerFinish) and result.ok
    step = steps_of(result)[0]
    assert step.action.next_node == "parallel" and step.error is None
    observation: Any = step.observation
    ok, failed = observation["branches"]
    assert ok["observation"] == {"city": "Oslo", "celsius": 21.5}
    error = "tool 'weather' raised ValueError: no weather station in Atlantis"
    assert failed["node"] == "weather" and failed["error"] == error
    assert observation["stats"] == {"success": 1, "failed": 1}
    assert "join" not in observation  # no join strategy by default (PenguiFlow's)
    assert error in last_prompt(llm, 1)


async def test_the_old_plan_dialect_with_a_join_strategy_reaches_the_join() -> None:
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
    step = steps_of(result)[0]
    assert step.action.next_node == "parallel"
    joined: dict[str, Any] = step.observation["join"] if step.observation else {}
    assert joined["failure_count"] == 1 and joined["success_count"] == 1
    failed = joined["branches"][1]
    error = "tool 'weather' raised ValueError: no weather station in Atlantis"
    assert failed["ok"] is False and failed["error"] == error
    assert error in last_prompt(llm, 1)


async def test_the_old_finish_dialect_is_read() -> None:
    old = json.dumps({"thought": "done", "next_node": None, "args": {"answer": "old style"}})
    plan, _ = planner([old])
    result = await plan.run("q")
    assert isinstance(result, PlannerFinish) and result.payload["raw_answer"] == "old style"


async def test_a_human_gated_join_pauses_the_run() -> None:
    plan_reply = parallel([("search", {"text": "a"}), ("search", {"text": "b"})], "human_gated")
    plan, llm = planner([plan_reply, answer("picked a")])
    paused = await plan.run("search two ways")
    assert isinstance(paused, PlannerPause) and paused.reason == "approval_required"
    assert paused.payload["success_count"] == 2
    result = await plan.resume(paused.resume_token, "choose a")
    assert isinstance(result, PlannerFinish) and result.payload["raw_answer"] == "picked a"
    assert last_prompt(llm, 1) == "The user answered the pause: choose a"


async def test_two_sessions_at_once_keep_separate_memories() -> None:
    def reply(messages: list[LLMMessage]) -> str:
        seen = " ".join(m.content for m in messages[1:-1])  # memory, before the query
        return answer(f"{json.loads(messages[-1].content)['query']} | saw: {seen}")

    llm = ScriptedLLMClient([reply] * 5)
    shared = ReactPlanner(
        llm_client=llm, catalog=catalog(), short_term_memory=TruncationMemory(max_turns=5)
    )
    alice = MemoryKey(tenant_id="t", user_id="alice", session_id="s")
    bob = MemoryKey(tenant_id="t", user_id="bob", session_id="s")
    await asyncio.gather(
        shared.run("alice 1", memory_key=alice), shared.run("bob 1", memory_key=bob)
    )
    second_alice, second_bob = await asyncio.gather(
        shared.run("alice 2", memory_key=alice), shared.run("bob 2", memory_key=bob)
    )
    assert isinstance(second_alice, PlannerFinish) and isinstance(second_bob, PlannerFinish)
    alice_text = second_alice.payload["raw_answer"]
    bob_text = second_bob.payload["raw_answer"]
    assert alice_text.startswith("alice 2 | saw:") and "alice 1" in alice_text
    assert "bob" not in alice_text
    assert bob_text.startswith("bob 2 | saw:") and "bob 1" in bob_text and "alice" not in bob_text
    nobody = await shared.run("no key")  # no key: no memory at all (fail closed)
    assert isinstance(nobody, PlannerFinish) and nobody.payload["raw_answer"] == "no key | saw: "


async def test_reflection_sends_a_weak_answer_back_for_a_revision() -> None:
    replies = [
        answer("draft"),
        json.dumps({"score": 0.2, "passed": False, "feedback": "cite a source"}),
        answer("final with source"),
        json.dumps({"score": 0.95, "passed": True, "feedback": "good"}),
    ]
    plan, llm = planner(replies, reflection_config=ReflectionConfig(enabled=True))
    result = await plan.run("answer with a source")
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload["raw_answer"] == "final with source"
    reflection = result.metadata["reflection"]
    assert reflection["revisions"] == 1 and reflection["passed"] is True
    assert "cite a source" in last_prompt(llm, 2)


async def test_reflection_with_a_separate_critic() -> None:
    critic = ScriptedLLMClient(
        [
            json.dumps({"score": 0.1, "passed": False, "feedback": "name the city"}),
            json.dumps({"score": 0.9, "passed": False, "feedback": "fine"}),  # at the threshold
        ]
    )
    plan, llm = planner(
        [answer("it is warm"), answer("Oslo is warm")],
        reflection_config=ReflectionConfig(enabled=True, use_separate_llm=True),
        reflection_llm=critic,
    )
    result = await plan.run("where is it warm?")
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload["raw_answer"] == "Oslo is warm"
    assert len(critic.calls) == 2 and len(llm.calls) == 2
    assert "it is warm" in critic.calls[0].messages[-1].content
    assert "name the city" in last_prompt(llm, 1)
    assert result.metadata["cost"]["reflection_llm_calls"] == 2


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
    plan_reply = parallel([("search", {"text": "a"})] * 3, "count_titles")
    events: list[PlannerEvent] = []
    plan, llm = planner(
        [plan_reply, answer("three titles " * 5)],
        event_callback=events.append,
        stream_final_response=True,
    )
    result = await plan.run("count")
    assert isinstance(result, PlannerFinish) and result.ok
    assert "count_titles" in llm.calls[0].messages[0].content
    observation: Any = steps_of(result)[0].observation
    assert observation["join"] == 3 and observation["stats"] == {"success": 3, "failed": 0}
    types = [e.event_type for e in events]
    assert types[0] == "step_start" and types[-1] == "finish"
    assert "tool_call_start" in types and "tool_call_result" in types
    chunks = [e.extra for e in events if e.event_type == "llm_stream_chunk"]
    said = [c for c in chunks if c["channel"] == "answer"]
    assert "".join(c["text"] for c in said) == "three titles " * 5
    assert [c["done"] for c in said][-1] is True and not any(c["done"] for c in said[:-1])
    finish = events[-1].extra
    assert {c["action_seq"] for c in said} == {finish["answer_action_seq"]} == {2}


async def test_a_join_strategy_nobody_installed_says_what_is_installed() -> None:
    plan, llm = planner([parallel([("search", {"text": "a"})], "vote"), answer("x")])
    result = await plan.run("q")
    assert isinstance(result, PlannerFinish) and result.ok
    error = steps_of(result)[0].error
    assert error is not None and "no join strategy 'vote'; use one of:" in error
    assert "append" in error and error in last_prompt(llm, 1)
    with pytest.raises(DriverNotFoundError, match="no join strategy for name 'vote'; installed"):
        plan._joins.get("vote")


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
    assert types[0] == "planner_step_start" and "planner_planner_repair_attempt" in types
    assert types.index("planner_planner_repair_attempt") < types.index("planner_tool_call_start")
    assert types.count("planner_step_start") == 2 and types[-1] == "planner_finish"
    assert [e.event_type for e in plugin.hooked] == types
    assert {e.trace_id for e in received} == {result.metadata["run_id"]}
    tool_call = next(e for e in received if e.event_type == "planner_tool_call_start")
    assert tool_call.extra["tool_name"] == "search"  # PenguiFlow's: in extra, not node_name


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
    result = await ReactPlanner(llm_client=llm, catalog=specs).run("double 2")
    assert isinstance(result, PlannerFinish)
    error = result.metadata["steps"][0]["error"]
    assert error is not None and error.startswith("tool 'double' raised ValidationError")
    assert "doubled" in error


def test_react_planner_is_importable_from_penguiflow() -> None:
    from penguiflow import PlannerFinish as Finish
    from penguiflow import ReactPlanner as Planner
    from penguiflow.planner import ReactPlanner as FromPlannerModule

    assert Planner is ReactPlanner and Finish is PlannerFinish
    assert FromPlannerModule is ReactPlanner


def test_the_planner_demo_runs() -> None:
    import subprocess
    import sys

    demo = Path(__file__).resolve().parents[3] / "examples" / "planner_demo.py"
    done = subprocess.run(
        [sys.executable, str(demo)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "paused: approval_required" in done.stdout
    assert "answer_complete: Lisbon (24C, sunny) is booked for 2 nights." in done.stdout
    assert "repair rounds: 1" in done.stdout
    atlantis = "- parallel forecast: tool 'forecast' raised LookupError: no forecast for Atlantis"
    assert atlantis in done.stdout


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
    result = await ReactPlanner(llm_client=llm, catalog=specs).run("weather?")
    assert isinstance(result, PlannerFinish)
    errors = [step["error"] for step in result.metadata["steps"]]
    assert errors[0] == "tool 'weather' raised ValueError: no weather station in Atlantis"
    assert errors[2] is not None
    assert errors[2].startswith("tool 'weather' raised CircuitOpen: circuit open after 2")
