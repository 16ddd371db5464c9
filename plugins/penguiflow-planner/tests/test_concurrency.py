"""Structured concurrency in the planner, and a tool runner that survives hostile errors.

A run's deadline and its caller's cancellation reach whatever is in flight (the model call,
tools, parallel branches) and nothing is left running when `run()` returns; background
summaries belong to the memory, which cancels and awaits them on `aclose()`. No sleeps are
used to synchronise: tests wait on events, and leftover tasks are polled with a deadline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from penguiflow_planner import (
    OwnerMismatchError,
    PauseRequested,
    PlannerBudgets,
    PlannerFinish,
    ReactPlanner,
    SteeringCancelled,
    TrajectoryStep,
)
from penguiflow_planner.memory import (
    MemoryBudget,
    RollingSummaryMemory,
    ShortTermMemoryConfig,
)
from pydantic import BaseModel
from tools import catalog

from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool
from penguiflow.catalog import NodeSpec
from penguiflow.errors import PenguiFlowError
from penguiflow.llm import LLMMessage, ScriptedLLMClient
from penguiflow.memory import ConversationTurn, MemoryKey
from penguiflow.testing import leftover_tasks

T = TypeVar("T")
KEY = MemoryKey(tenant_id="t", user_id="u", session_id="s")


class Job(BaseModel):
    key: str


class Done(BaseModel):
    key: str


class Unprintable(Exception):
    """An exception whose text cannot be had: `str()` on it raises."""

    def __str__(self) -> str:
        raise RuntimeError("this exception refuses to describe itself")


def act(node: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def plan(*calls: tuple[str, dict[str, Any]]) -> str:
    """A parallel plan with no join: PenguiFlow's observation of every branch."""
    steps = [{"node": node, "args": args} for node, args in calls]
    return json.dumps({"thought": "all at once", "next_node": "parallel", "args": {"steps": steps}})


def legacy_plan(*calls: tuple[str, dict[str, Any]], join: str = "append") -> str:
    """The old dialect, still read: the plan and its join strategy at the top level."""
    return json.dumps(
        {"plan": [{"node": node, "args": args} for node, args in calls], "join": join}
    )


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": "final_response", "args": {"answer": text}})


def catalog_of(*tools: tuple[Callable[..., Any], NodePolicy]) -> list[NodeSpec]:
    registry = ModelRegistry()
    nodes = []
    for func, policy in tools:
        registry.register(func.__name__, Job, Done)
        nodes.append(Node(func, name=func.__name__, policy=policy))
    return build_catalog(nodes, registry)


async def bounded(awaitable: Awaitable[T], seconds: float = 10.0) -> T:
    """A hang (the bug these tests look for) fails the test instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, seconds)


def steps(result: Any) -> list[TrajectoryStep]:
    assert isinstance(result, PlannerFinish)
    assert result.metadata["step_count"] == len(result.metadata["steps"])
    return [TrajectoryStep.from_dump(step) for step in result.metadata["steps"]]


def observed(step: TrajectoryStep) -> dict[str, Any]:
    """A parallel step's observation (the branches, their stats, the join if any)."""
    assert isinstance(step.observation, dict)
    return step.observation


def planner_for(llm: Any, specs: list[NodeSpec], **options: Any) -> ReactPlanner:
    return ReactPlanner(llm_client=llm, catalog=specs, **options)


class Hang:
    """A `hang` tool that waits until it is cancelled, recording the calls that started and
    the ones that were cancelled (recorded before the cancellation goes on)."""

    def __init__(self, expect: int = 1) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.all_started = asyncio.Event()
        self.expect = expect

    def catalog(self, policy: NodePolicy | None = None) -> list[NodeSpec]:
        @tool(desc="Waits for ever.")
        async def hang(message: Job, ctx: Any) -> Done:
            self.started.append(message.key)
            if len(self.started) == self.expect:
                self.all_started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(message.key)
                raise
            return Done(key=message.key)

        return catalog_of((hang, policy or NodePolicy(validate="none")))


# -- deadlines and cancellation --------------------------------------------------------------


async def test_a_deadline_cancels_the_model_call_in_flight() -> None:
    cancelled = asyncio.Event()

    async def never(messages: list[LLMMessage]) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return answer("unreachable")

    planner = planner_for(
        ScriptedLLMClient([never]), catalog(), budgets=PlannerBudgets(deadline_s=0.5)
    )
    result = await bounded(planner.run("will the model ever answer?"))
    assert isinstance(result, PlannerFinish) and result.reason == "budget_exhausted"
    assert result.finish_reason == "deadline"
    assert result.metadata["interrupted"] == "model call"
    assert result.metadata["error"] == "budget exhausted: deadline"
    assert cancelled.is_set()  # cancelled and awaited before run() returned


async def test_a_deadline_shorter_than_a_tools_timeout_ends_the_run() -> None:
    hang = Hang()
    llm = ScriptedLLMClient([act("hang", key="a"), answer("never")])
    specs = hang.catalog(NodePolicy(validate="none", timeout_s=30))
    result = await bounded(planner_for(llm, specs, deadline_s=0.5).run("wait"))
    assert isinstance(result, PlannerFinish) and result.reason == "budget_exhausted"
    assert result.finish_reason == "deadline"
    assert result.metadata["interrupted"] == "tool hang"
    assert hang.cancelled == ["a"] and steps(result) == []  # not a tool timeout observation
    assert llm.remaining == 1  # the model was not asked again after the deadline


async def test_a_deadline_cancels_every_parallel_branch_and_awaits_it() -> None:
    before = set(asyncio.all_tasks())
    hang = Hang(expect=2)
    llm = ScriptedLLMClient([plan(*(("hang", {"key": key}) for key in "abc"))])
    planner = planner_for(
        llm, hang.catalog(), max_concurrent_branches=2, budgets=PlannerBudgets(deadline_s=0.5)
    )
    result = await bounded(planner.run("three at once"))
    assert isinstance(result, PlannerFinish) and result.reason == "budget_exhausted"
    assert result.finish_reason == "deadline"
    assert result.metadata["interrupted"] == "parallel tools hang, hang, hang"
    assert sorted(hang.started) == ["a", "b"]  # max_concurrent_branches: the third never ran
    assert sorted(hang.cancelled) == ["a", "b"]
    assert steps(result) == []
    assert await leftover_tasks(before) == set()


async def test_cancelling_a_run_cancels_and_awaits_its_branches() -> None:
    before = set(asyncio.all_tasks())
    hang = Hang(expect=2)
    llm = ScriptedLLMClient([plan(("hang", {"key": "a"}), ("hang", {"key": "b"}))])
    run = asyncio.create_task(planner_for(llm, hang.catalog()).run("two at once"))
    await bounded(hang.all_started.wait())
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(hang.cancelled) == ["a", "b"]
    assert await leftover_tasks(before - {run}) == set()


def busy_tool(running: dict[str, int]) -> list[NodeSpec]:
    @tool(desc="Yields to the others while it runs.")
    async def busy(message: Job, ctx: Any) -> Done:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        for _ in range(3):
            await asyncio.sleep(0)  # a checkpoint, so that the other branches run meanwhile
        running["now"] -= 1
        return Done(key=message.key)

    return catalog_of((busy, NodePolicy(validate="none")))


async def test_a_plan_runs_at_most_max_concurrent_branches_at_once_in_plan_order() -> None:
    running = {"now": 0, "peak": 0}
    keys = "abcdefg"
    llm = ScriptedLLMClient([plan(*(("busy", {"key": k}) for k in keys)), answer("all done")])
    planner = planner_for(llm, busy_tool(running), max_concurrent_branches=3)
    result = await bounded(planner.run("seven calls"))
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload["raw_answer"] == "all done"
    assert running["peak"] == 3
    observation = observed(steps(result)[0])
    assert [b["observation"]["key"] for b in observation["branches"]] == list(keys)
    assert observation["stats"] == {"success": 7, "failed": 0}
    assert "join" not in observation  # no join named, none by default: PenguiFlow's


async def test_without_a_limit_every_branch_runs_at_once() -> None:
    # max_concurrent_branches=None (the default): all of the plan's calls at once.
    running = {"now": 0, "peak": 0}
    keys = "abcdefg"
    llm = ScriptedLLMClient([plan(*(("busy", {"key": k}) for k in keys)), answer("all done")])
    result = await bounded(planner_for(llm, busy_tool(running)).run("seven calls"))
    assert isinstance(result, PlannerFinish) and result.ok
    assert running["peak"] == 7


async def test_the_old_plan_dialect_still_runs_limited_and_joined_in_plan_order() -> None:
    running = {"now": 0, "peak": 0}
    keys = "abcde"
    llm = ScriptedLLMClient(
        [legacy_plan(*(("busy", {"key": k}) for k in keys)), answer("all done")]
    )
    planner = planner_for(llm, busy_tool(running), max_concurrent_branches=2)
    result = await bounded(planner.run("five calls"))
    assert isinstance(result, PlannerFinish) and result.ok
    assert running["peak"] == 2
    (step,) = steps(result)
    assert step.action.next_node == "parallel"
    assert [b["observation"]["key"] for b in observed(step)["branches"]] == list(keys)
    join = observed(step)["join"]  # the append strategy the plan named ran
    assert [b["output"]["key"] for b in join["branches"]] == list(keys)
    assert all(b["tool"] == "busy" and b["ok"] for b in join["branches"])


# -- hostile tool errors ---------------------------------------------------------------------


async def test_a_tool_error_whose_str_raises_is_an_observation_and_the_run_goes_on() -> None:
    # Regression: str() on the tool's exception raised inside the runner and crashed the run.
    @tool(desc="Fails with an exception that cannot be printed.")
    async def hostile(message: Job, ctx: Any) -> Done:
        raise Unprintable()

    @tool(desc="Works.")
    async def fine(message: Job, ctx: Any) -> Done:
        return Done(key=message.key)

    policy = NodePolicy(validate="none")
    llm = ScriptedLLMClient(
        [
            act("hostile", key="x"),
            plan(("hostile", {"key": "y"}), ("fine", {"key": "z"})),
            answer("one of them worked"),
        ]
    )
    before = set(asyncio.all_tasks())
    specs = catalog_of((hostile, policy), (fine, policy))
    result = await bounded(planner_for(llm, specs).run("try"))
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload["raw_answer"] == "one of them worked"
    single, parallel = steps(result)  # the answer is the finish, not a step
    described = "Unprintable (unprintable: its __str__ raised)"
    assert single.error == f"tool 'hostile' raised Unprintable: {described}"
    assert single.failure is not None and single.failure["message"] == described
    assert described in llm.calls[1].messages[-1].content  # the model saw it
    assert observed(parallel)["stats"] == {"success": 1, "failed": 1}
    assert observed(parallel)["branches"][0]["error"] == (
        f"tool 'hostile' raised Unprintable: {described}"
    )
    assert observed(parallel)["branches"][1]["observation"] == {"key": "z"}
    assert described in llm.calls[2].messages[-1].content
    assert await leftover_tasks(before) == set()


async def test_a_tool_retried_past_attempt_1025_keeps_retrying_and_succeeds() -> None:
    # Regression: 2.0 ** 1024 overflowed in the backoff, so attempt 1025 crashed the run
    # instead of retrying (a base of 0 keeps the first 1,024 retries instant).
    attempts = {"n": 0}

    @tool(desc="Fails 1,100 times, then works.")
    async def flaky(message: Job, ctx: Any) -> Done:
        attempts["n"] += 1
        if attempts["n"] <= 1_100:
            raise ConnectionError(f"attempt {attempts['n']} failed")
        return Done(key=message.key)

    policy = NodePolicy(validate="none", max_retries=10**6, backoff_base=0.0, max_backoff=0.01)
    llm = ScriptedLLMClient([act("flaky", key="k"), answer("worked in the end")])
    result = await bounded(planner_for(llm, catalog_of((flaky, policy))).run("persist"), 60)
    assert isinstance(result, PlannerFinish) and result.ok
    assert attempts["n"] == 1_101
    assert steps(result)[0].observation == {"key": "k"} and steps(result)[0].error is None


async def test_a_timeout_error_raised_by_the_tool_is_not_its_own_timeout() -> None:
    # Regression: any TimeoutError was reported as the policy's timeout ("timed out after 5s").
    @tool(desc="Its upstream times out.")
    async def upstream(message: Job, ctx: Any) -> Done:
        raise TimeoutError("the upstream service took too long")

    policy = NodePolicy(validate="none", timeout_s=5)
    llm = ScriptedLLMClient([act("upstream", key="k"), answer("upstream is slow")])
    result = await bounded(planner_for(llm, catalog_of((upstream, policy))).run("call it"))
    assert isinstance(result, PlannerFinish) and result.ok
    assert steps(result)[0].error == (
        "tool 'upstream' raised TimeoutError: the upstream service took too long"
    )


def test_planner_errors_are_penguiflow_errors() -> None:
    for error in (PauseRequested, OwnerMismatchError, SteeringCancelled):
        assert issubclass(error, PenguiFlowError), error


# -- owned background work -------------------------------------------------------------------


def blocked_summariser(started: asyncio.Event, cancelled: list[str]) -> ScriptedLLMClient:
    """A summariser that never answers; it records being cancelled."""

    async def reply(messages: list[LLMMessage]) -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("summary")
            raise
        return "unreachable"

    return ScriptedLLMClient([reply] * 10)


def turn(n: int) -> ConversationTurn:
    return ConversationTurn(user=f"q{n}", assistant=f"a{n}")


async def test_aclose_cancels_the_background_summaries_and_leaves_no_task() -> None:
    before = set(asyncio.all_tasks())
    started, cancelled = asyncio.Event(), list[str]()
    memory = RollingSummaryMemory(blocked_summariser(started, cancelled), max_turns=1)
    async with memory:
        await memory.add_turn(KEY, turn(0))
        await memory.add_turn(KEY, turn(1))  # q0 overflows: a summary starts
        await bounded(started.wait())
    assert cancelled == ["summary"]
    assert await leftover_tasks(before) == set()
    await bounded(memory.aclose())  # idempotent
    snapshot = await memory.snapshot(KEY)  # still usable; q0 waits for the next summary
    assert snapshot.summary is None and [t.user for t in snapshot.turns] == ["q1"]


async def test_turns_added_during_a_summary_are_summarised_after_it() -> None:
    # Regression: a summary that ended with new turns pending tried to schedule the next one,
    # saw itself still running and scheduled nothing, so those turns waited for another turn.
    first_started, release = asyncio.Event(), asyncio.Event()
    calls = {"n": 0}

    async def reply(messages: list[LLMMessage]) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            first_started.set()
            await release.wait()
        previous, _, turns = messages[-1].content.partition("\n\nNew turns:\n")
        users = [line[len("User: ") :] for line in turns.splitlines() if line.startswith("User:")]
        kept = previous.removeprefix("Summary so far:\n")
        return " ".join(([] if kept == "(none)" else [kept]) + users)

    memory = RollingSummaryMemory(ScriptedLLMClient([reply] * 10), max_turns=1)
    await memory.add_turn(KEY, turn(0))
    await memory.add_turn(KEY, turn(1))  # the summary of q0 starts and waits
    await bounded(first_started.wait())
    await memory.add_turn(KEY, turn(2))  # q1 becomes pending meanwhile
    release.set()
    await bounded(memory.flush())
    snapshot = await memory.snapshot(KEY)
    assert snapshot.summary == "q0 q1" and [t.user for t in snapshot.turns] == ["q2"]
    assert calls["n"] == 2


def answers(n: int) -> ScriptedLLMClient:
    return ScriptedLLMClient([answer(f"noted {i}") for i in range(n)])


async def test_a_planner_closes_the_memory_it_made_by_name_not_one_passed_in() -> None:
    before = set(asyncio.all_tasks())
    started, cancelled = asyncio.Event(), list[str]()
    # By name: the driver's default of 6 turns kept, so the 7th run starts a summary.
    async with planner_for(
        answers(7),
        catalog(),
        short_term_memory="rolling_summary",
        summarizer_llm=blocked_summariser(started, cancelled),
    ) as planner:
        for n in range(7):
            await bounded(planner.run(f"q{n}", memory_key=KEY))
        await bounded(started.wait())
    assert cancelled == ["summary"]
    assert await leftover_tasks(before) == set()

    theirs_started, theirs_cancelled = asyncio.Event(), list[str]()
    theirs = RollingSummaryMemory(blocked_summariser(theirs_started, theirs_cancelled), max_turns=1)
    async with planner_for(answers(2), catalog(), short_term_memory=theirs) as planner:
        await bounded(planner.run("first", memory_key=KEY))
        await bounded(planner.run("second", memory_key=KEY))
        await bounded(theirs_started.wait())
    assert theirs_cancelled == []  # the caller's memory: still summarising
    await theirs.aclose()
    assert theirs_cancelled == ["summary"]


async def test_a_planner_closes_the_memories_it_made_from_a_config() -> None:
    # PenguiFlow's form: one DefaultShortTermMemory per key, made by the planner, so closed
    # by it (its summary in progress cancelled and awaited).
    before = set(asyncio.all_tasks())
    started, cancelled = asyncio.Event(), list[str]()
    config = ShortTermMemoryConfig(
        strategy="rolling_summary", budget=MemoryBudget(full_zone_turns=1)
    )
    async with planner_for(
        answers(2),
        catalog(),
        short_term_memory=config,
        summarizer_llm=blocked_summariser(started, cancelled),
    ) as planner:
        await bounded(planner.run("first", memory_key=KEY))
        await bounded(planner.run("second", memory_key=KEY))  # a summary starts
        await bounded(started.wait())
    assert cancelled == ["summary"]
    assert await leftover_tasks(before) == set()
