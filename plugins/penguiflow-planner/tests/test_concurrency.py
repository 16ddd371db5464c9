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
    PauseRequested,
    PlannerBudgets,
    PlannerFinish,
    ReactPlanner,
    Trajectory,
)
from penguiflow_planner.memory import RollingSummaryMemory
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
    return json.dumps(
        {"plan": [{"node": node, "args": args} for node, args in calls], "join": "append"}
    )


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": None, "args": {"answer": text}})


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


def steps(result: Any) -> list[Any]:
    assert isinstance(result, PlannerFinish)
    return Trajectory.model_validate(result.metadata["trajectory"]).steps


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

    planner = ReactPlanner(
        ScriptedLLMClient([never]), catalog(), budgets=PlannerBudgets(deadline_s=0.5)
    )
    result = await bounded(planner.run("will the model ever answer?"))
    assert isinstance(result, PlannerFinish) and result.reason == "deadline"
    assert result.metadata["interrupted"] == "model call"
    assert result.metadata["error"] == "budget exhausted: deadline"
    assert cancelled.is_set()  # cancelled and awaited before run() returned


async def test_a_deadline_shorter_than_a_tools_timeout_ends_the_run() -> None:
    hang = Hang()
    llm = ScriptedLLMClient([act("hang", key="a"), answer("never")])
    specs = hang.catalog(NodePolicy(validate="none", timeout_s=30))
    result = await bounded(
        ReactPlanner(llm, specs, budgets=PlannerBudgets(deadline_s=0.5)).run("wait")
    )
    assert isinstance(result, PlannerFinish) and result.reason == "deadline"
    assert result.metadata["interrupted"] == "tool hang"
    assert hang.cancelled == ["a"] and steps(result) == []  # not a tool timeout observation


async def test_a_deadline_cancels_every_parallel_branch_and_awaits_it() -> None:
    before = set(asyncio.all_tasks())
    hang = Hang()
    llm = ScriptedLLMClient([plan(*(("hang", {"key": key}) for key in "abc"))])
    planner = ReactPlanner(
        llm, hang.catalog(), max_parallel=2, budgets=PlannerBudgets(deadline_s=0.5)
    )
    result = await bounded(planner.run("three at once"))
    assert isinstance(result, PlannerFinish) and result.reason == "deadline"
    assert result.metadata["interrupted"] == "parallel tools hang, hang, hang"
    assert sorted(hang.started) == ["a", "b"]  # max_parallel: the third never started
    assert sorted(hang.cancelled) == ["a", "b"]
    assert await leftover_tasks(before) == set()


async def test_cancelling_a_run_cancels_and_awaits_its_branches() -> None:
    before = set(asyncio.all_tasks())
    hang = Hang(expect=2)
    llm = ScriptedLLMClient([plan(("hang", {"key": "a"}), ("hang", {"key": "b"}))])
    run = asyncio.create_task(ReactPlanner(llm, hang.catalog()).run("two at once"))
    await bounded(hang.all_started.wait())
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(hang.cancelled) == ["a", "b"]
    assert await leftover_tasks(before - {run}) == set()


async def test_a_plan_runs_at_most_max_parallel_calls_at_once_and_keeps_plan_order() -> None:
    running = {"now": 0, "peak": 0}

    @tool(desc="Yields to the others while it runs.")
    async def busy(message: Job, ctx: Any) -> Done:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        for _ in range(3):
            await asyncio.sleep(0)  # a checkpoint, so that the other branches run meanwhile
        running["now"] -= 1
        return Done(key=message.key)

    keys = "abcdefg"
    llm = ScriptedLLMClient([plan(*(("busy", {"key": k}) for k in keys)), answer("all done")])
    specs = catalog_of((busy, NodePolicy(validate="none")))
    result = await bounded(ReactPlanner(llm, specs, max_parallel=3).run("seven calls"))
    assert isinstance(result, PlannerFinish) and result.ok
    assert running["peak"] == 3
    branches = steps(result)[0].observation["branches"]
    assert [b["output"]["key"] for b in branches] == list(keys)


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
    result = await bounded(
        ReactPlanner(llm, catalog_of((hostile, policy), (fine, policy))).run("try")
    )
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload == "one of them worked"
    single, parallel, _ = steps(result)
    described = "Unprintable (unprintable: its __str__ raised)"
    assert single.error == f"Unprintable: {described}"
    assert described in llm.calls[1].messages[-1].content  # the model saw it
    assert parallel.observation["failure_count"] == 1
    assert parallel.observation["branches"][0]["error"] == described
    assert parallel.observation["branches"][1]["output"] == {"key": "z"}
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
    result = await bounded(ReactPlanner(llm, catalog_of((flaky, policy))).run("persist"), 60)
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
    result = await bounded(ReactPlanner(llm, catalog_of((upstream, policy))).run("call it"))
    assert steps(result)[0].error == "TimeoutError: the upstream service took too long"


def test_planner_errors_are_penguiflow_errors() -> None:
    assert issubclass(PauseRequested, PenguiFlowError)


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
    started, cancelled = asyncio.Event(), []
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


async def test_a_planner_closes_the_memory_it_made_by_name_not_one_passed_in() -> None:
    before = set(asyncio.all_tasks())
    started, cancelled = asyncio.Event(), []
    llm = ScriptedLLMClient([answer("noted"), answer("noted again")])
    options = {"llm": blocked_summariser(started, cancelled), "max_turns": 1}
    async with ReactPlanner(
        llm, catalog(), memory="rolling_summary", memory_options=options
    ) as planner:
        await bounded(planner.run("first", memory_key=KEY))
        await bounded(planner.run("second", memory_key=KEY))  # a summary starts
        await bounded(started.wait())
    assert cancelled == ["summary"]
    assert await leftover_tasks(before) == set()

    theirs_started, theirs_cancelled = asyncio.Event(), []
    theirs = RollingSummaryMemory(blocked_summariser(theirs_started, theirs_cancelled), max_turns=1)
    llm = ScriptedLLMClient([answer("noted"), answer("noted again")])
    async with ReactPlanner(llm, catalog(), memory=theirs) as planner:
        await bounded(planner.run("first", memory_key=KEY))
        await bounded(planner.run("second", memory_key=KEY))
        await bounded(theirs_started.wait())
    assert theirs_cancelled == []  # the caller's memory: still summarising
    await theirs.aclose()
    assert theirs_cancelled == ["summary"]
