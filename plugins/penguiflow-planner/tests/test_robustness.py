"""`run()` always returns a typed ending, within its deadline, whatever the model, the tools,
the client or a strategy do; only the caller's own cancellation propagates.

Each hostile input here used to raise out of `run()` or hang it: a reply nesting 100,000
deep, arguments nesting 600 deep, a huge reply, an integer JSON will not convert, a tool that
raises `CancelledError`, a backoff that overflows, a client raising something other than
`LLMError`, a memory or a join that fails. No sleeps synchronise these tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from penguiflow_planner import (
    PlannerBudgets,
    PlannerFinish,
    ReactPlanner,
    ReflectionConfig,
    Trajectory,
    parse_action,
)
from penguiflow_planner._parsing import json_objects
from pydantic import BaseModel
from tools import catalog

from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool
from penguiflow.catalog import NodeSpec
from penguiflow.errors import ConfigurationError
from penguiflow.joins import JoinRequest, JoinResult
from penguiflow.llm import LLMMessage, ScriptedLLMClient
from penguiflow.memory import ConversationTurn, MemoryKey, MemorySnapshot
from penguiflow.testing import leftover_tasks

KEY = MemoryKey(tenant_id="t", user_id="u", session_id="s")


class Job(BaseModel):
    key: str


class Done(BaseModel):
    key: str


def act(node: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": None, "args": {"answer": text}})


def nested(depth: int) -> str:
    """`{"a": {"a": ... 1 ...}}`, `depth` objects deep."""
    return '{"a": ' * depth + "1" + "}" * depth


def catalog_of(*tools: tuple[Any, NodePolicy]) -> list[NodeSpec]:
    registry = ModelRegistry()
    nodes = []
    for func, policy in tools:
        registry.register(func.__name__, Job, Done)
        nodes.append(Node(func, name=func.__name__, policy=policy))
    return build_catalog(nodes, registry)


async def bounded(awaitable: Any, seconds: float = 20.0) -> Any:
    """A hang (the bug these tests look for) fails the test instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, seconds)


def steps(result: Any) -> list[Any]:
    assert isinstance(result, PlannerFinish)
    return Trajectory.model_validate(result.metadata["trajectory"]).steps


# -- replies that are too big or too deep -----------------------------------------------------


async def test_a_reply_nesting_100000_deep_is_a_repair_round() -> None:
    # Regression: the JSON scan raised RecursionError out of run().
    deep = '{"thought": "x", "next_node": null, "args": {"answer": ' + nested(100_000) + "}}"
    llm = ScriptedLLMClient([deep, answer("flat now")])
    result = await bounded(ReactPlanner(llm, catalog()).run("q"))
    assert isinstance(result, PlannerFinish) and result.ok and result.payload == "flat now"
    repair = steps(result)[0]
    assert repair.kind == "repair" and repair.error.startswith("nesting deeper than 64")
    assert "nesting deeper than 64" in llm.calls[1].messages[-1].content
    kept = repair.observation["reply"]
    assert len(kept) < 5_000 and kept.endswith("more characters]")  # clipped for the prompts
    result = await bounded(ReactPlanner(ScriptedLLMClient([deep] * 4), catalog()).run("q"))
    assert isinstance(result, PlannerFinish) and result.reason == "repair_failed"


async def test_tool_arguments_nesting_600_deep_are_a_repair_round() -> None:
    # Regression: the placeholder scan recursed per level and raised RecursionError.
    deep_args = '{"next_node": "search", "args": {"text": "x", "extra": ' + nested(600) + "}}"
    llm = ScriptedLLMClient([deep_args, answer("ok")])
    result = await bounded(ReactPlanner(llm, catalog()).run("q"))
    assert isinstance(result, PlannerFinish) and result.ok
    assert steps(result)[0].error.startswith("nesting deeper than 64")
    roomy = ReactPlanner(ScriptedLLMClient([deep_args, answer("ok")]), catalog(),
                         max_json_depth=256)  # fmt: skip
    result = await bounded(roomy.run("q"))  # still refused: 600 > 256
    assert isinstance(result, PlannerFinish) and "nesting deeper than 256" in steps(result)[0].error


async def test_a_huge_reply_is_refused_by_size_before_it_is_scanned() -> None:
    huge = answer("x" * 1_200_000)
    llm = ScriptedLLMClient([huge, answer("short")])
    result = await bounded(ReactPlanner(llm, catalog()).run("q"))
    assert isinstance(result, PlannerFinish) and result.payload == "short"
    size = len(huge.encode())
    assert steps(result)[0].error == (
        f"reply too large: {size} bytes, limit 1000000; reply with one short JSON object"
    )
    small = ReactPlanner(ScriptedLLMClient(["é" * 30, answer("ok")]), catalog(),
                         max_reply_bytes=50)  # fmt: skip
    result = await bounded(small.run("q"))  # 30 characters, 60 bytes
    assert steps(result)[0].error.startswith("reply too large: 60 bytes, limit 50")


def test_parsing_limits_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="max_json_depth must be between 1 and 256"):
        ReactPlanner(ScriptedLLMClient([]), catalog(), max_json_depth=10_000)
    with pytest.raises(ConfigurationError, match="max_reply_bytes must be >= 1"):
        ReactPlanner(ScriptedLLMClient([]), catalog(), max_reply_bytes=0)


def test_the_parser_reads_what_it_did_and_bounds_the_rest() -> None:
    specs = {spec.name: spec for spec in catalog()}
    ok = parse_action('{"args": {"text": "a"}} {"next_node": "search"}', specs, max_depth=3)
    assert ok.next_node == "search" and ok.args == {"text": "a"}
    assert json_objects('{"a": [[1]]}', max_depth=3) == [{"a": [[1]]}]
    with pytest.raises(ValueError, match="nesting deeper than 2"):
        json_objects('{"a": [[1]]}', max_depth=2)
    with pytest.raises(ValueError, match="nesting deeper than 64"):
        json_objects('{"a": [' * 30_000)  # past the decoder's recursion: refused at once
    # Unclosed objects, each read to the end of the text before it fails: the scan gives up
    # after a few passes' worth of such reading instead of going quadratic. An action after
    # 3 of them is found; after 400 (with 900 KB to read each), the scan has given up.
    tail = "0, " * 300_000 + '{"next_node": "search"}'
    assert json_objects('{"a": [' * 3 + tail) == [{"next_node": "search"}]
    assert json_objects('{"a": [' * 400 + tail) == []
    # An integer with more digits than Python converts: not JSON we can read, not a crash.
    assert json_objects('{"answer": ' + "9" * 5_000 + "}") == []


async def test_an_integer_too_long_to_convert_is_a_repair_round() -> None:
    # Regression: json raised a plain ValueError (not a JSONDecodeError) out of run().
    llm = ScriptedLLMClient(['{"next_node": null, "args": {"answer": ' + "9" * 5_000 + "}}",
                             answer("ok")])  # fmt: skip
    result = await bounded(ReactPlanner(llm, catalog()).run("q"))
    assert isinstance(result, PlannerFinish) and result.ok
    assert steps(result)[0].kind == "repair"


# -- tools ------------------------------------------------------------------------------------


async def test_a_tool_raising_cancelled_error_of_its_own_is_a_failed_observation() -> None:
    # Regression: the CancelledError left run() though nobody had cancelled the run.
    @tool(desc="Awaits a job that someone else cancels.")
    async def orphan(message: Job, ctx: Any) -> Done:
        job: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        job.cancel()
        await job  # raises CancelledError in this task, which nobody cancelled
        return Done(key=message.key)

    policy = NodePolicy(validate="none", timeout_s=30)
    plan = json.dumps({"plan": [{"node": "orphan", "args": {"key": "p"}}] * 2})
    llm = ScriptedLLMClient([act("orphan", key="k"), plan, answer("the job was cancelled")])
    before = set(asyncio.all_tasks())
    result = await bounded(ReactPlanner(llm, catalog_of((orphan, policy))).run("q"))
    assert isinstance(result, PlannerFinish) and result.ok
    single, parallel, _ = steps(result)
    assert single.error is not None and single.error.startswith("CancelledError")
    assert parallel.observation["failure_count"] == 2
    assert await leftover_tasks(before) == set()


async def test_the_callers_cancellation_still_propagates_through_a_tool() -> None:
    started = asyncio.Event()

    @tool(desc="Waits until cancelled, then lets the cancellation go on.")
    async def wait(message: Job, ctx: Any) -> Done:
        started.set()
        await asyncio.Event().wait()
        return Done(key=message.key)

    llm = ScriptedLLMClient([act("wait", key="k")])
    run = asyncio.create_task(
        ReactPlanner(llm, catalog_of((wait, NodePolicy(validate="none")))).run("q")
    )
    await bounded(started.wait())
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_a_backoff_that_overflows_stops_retrying_with_the_failure() -> None:
    # Regression: past retry 1,024 an uncapped backoff is infinite, and the retry slept for
    # ever (or until the deadline): the run never heard back from the tool.
    attempts = {"n": 0}

    @tool(desc="Always fails.")
    async def broken(message: Job, ctx: Any) -> Done:
        attempts["n"] += 1
        raise ConnectionError(f"attempt {attempts['n']} failed")

    policy = NodePolicy(validate="none", max_retries=5_000, backoff_base=0.0)
    llm = ScriptedLLMClient([act("broken", key="k"), answer("the tool is down")])
    result = await bounded(ReactPlanner(llm, catalog_of((broken, policy))).run("q"), 60)
    assert isinstance(result, PlannerFinish) and result.ok
    assert attempts["n"] == 1_025  # the retry after 1,024 would have waited for ever
    assert steps(result)[0].error == "ConnectionError: attempt 1025 failed"


# -- the model, the memory, joins, observers ------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "text"),
    [
        (RuntimeError("client bug"), "model call failed: RuntimeError: client bug"),
        (KeyError("choices"), "model call failed: KeyError: 'choices'"),
        (asyncio.CancelledError(), "model call failed: CancelledError"),
    ],
    ids=["RuntimeError", "KeyError", "its own CancelledError"],
)
async def test_a_client_raising_something_other_than_llm_error_ends_with_no_path(
    failure: BaseException, text: str
) -> None:
    # Regression: only LLMError was caught; anything else left run() as an exception.
    llm = ScriptedLLMClient([act("search", text="a"), failure])
    result = await bounded(ReactPlanner(llm, catalog()).run("q"))
    assert isinstance(result, PlannerFinish) and result.reason == "no_path"
    assert result.metadata["error"] == text
    assert result.payload == {"titles": ["doc about a"]}  # the best effort so far


async def test_a_script_that_runs_out_ends_with_no_path() -> None:
    result = await bounded(ReactPlanner(ScriptedLLMClient([]), catalog()).run("q"))
    assert isinstance(result, PlannerFinish) and result.reason == "no_path"
    assert "ran out of replies" in result.metadata["error"]


class BrokenMemory:
    """A memory strategy whose reads fail, or whose writes fail."""

    def __init__(self, *, reads: bool) -> None:
        self.reads = reads

    async def add_turn(self, key: MemoryKey | None, turn: ConversationTurn) -> None:
        if not self.reads:
            raise OSError("memory store unreachable")

    async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot:
        if self.reads:
            raise OSError("memory store unreachable")
        return MemorySnapshot()

    async def clear(self, key: MemoryKey | None) -> None:
        return None


async def test_a_memory_that_fails_ends_the_run_with_a_reason_not_an_exception() -> None:
    planner = ReactPlanner(
        ScriptedLLMClient([answer("x")]), catalog(), memory=BrokenMemory(reads=True)
    )
    result = await bounded(planner.run("q", memory_key=KEY))
    assert isinstance(result, PlannerFinish) and result.reason == "error"
    assert result.metadata["error"] == (
        "the run failed during memory: OSError: memory store unreachable"
    )
    planner = ReactPlanner(
        ScriptedLLMClient([answer("x")]), catalog(), memory=BrokenMemory(reads=False)
    )
    result = await bounded(planner.run("q", memory_key=KEY))  # the answer stands
    assert isinstance(result, PlannerFinish) and result.ok and result.payload == "x"
    assert result.metadata["memory_error"] == "OSError: memory store unreachable"


class ExplodingJoin:
    name = "exploding"

    async def join(self, request: JoinRequest) -> JoinResult:
        raise ZeroDivisionError("a bug in a join strategy")


async def test_a_failing_join_strategy_and_an_unknown_join_name() -> None:
    plan = {"plan": [{"node": "search", "args": {"text": "a"}}] * 2}
    llm = ScriptedLLMClient([json.dumps(plan)])
    result = await bounded(ReactPlanner(llm, catalog(), join_strategy=ExplodingJoin()).run("q"))
    assert isinstance(result, PlannerFinish) and result.reason == "error"
    assert result.metadata["error"].startswith("the run failed during join: ZeroDivisionError")
    llm = ScriptedLLMClient([json.dumps({**plan, "join": "vote"}), answer("ok")])
    result = await bounded(ReactPlanner(llm, catalog()).run("q"))
    assert isinstance(result, PlannerFinish) and result.ok  # a repair round, then the answer
    assert steps(result)[0].error.startswith("join: no join strategy 'vote'; use one of:")


async def test_a_reviewer_raising_anything_is_skipped() -> None:
    critic = ScriptedLLMClient([TypeError("critic bug")])
    llm = ScriptedLLMClient([answer("draft")])
    planner = ReactPlanner(llm, catalog(), reflection=ReflectionConfig(critic=critic))
    result = await bounded(planner.run("q"))
    assert isinstance(result, PlannerFinish) and result.ok and result.payload == "draft"


# -- the deadline covers every await ----------------------------------------------------------


async def test_deadline_1s_ends_a_tool_without_timeout_that_never_returns() -> None:
    cancelled = asyncio.Event()

    @tool(desc="Never returns, and has no timeout.")
    async def forever(message: Job, ctx: Any) -> Done:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return Done(key=message.key)

    llm = ScriptedLLMClient([act("forever", key="k")])
    planner = ReactPlanner(
        llm, catalog_of((forever, NodePolicy(validate="none"))),
        budgets=PlannerBudgets(deadline_s=1),
    )  # fmt: skip
    began = time.monotonic()
    result = await bounded(planner.run("q"))
    took = time.monotonic() - began
    assert isinstance(result, PlannerFinish) and result.reason == "deadline"
    assert result.metadata["interrupted"] == "tool forever" and cancelled.is_set()
    assert took < 1 + 4.0  # generous: a margin, not a benchmark


async def test_deadline_1s_ends_a_model_call_that_never_returns() -> None:
    async def never(messages: list[LLMMessage]) -> str:
        await asyncio.Event().wait()
        return answer("unreachable")

    planner = ReactPlanner(
        ScriptedLLMClient([never]), catalog(), budgets=PlannerBudgets(deadline_s=1)
    )
    began = time.monotonic()
    result = await bounded(planner.run("q"))
    took = time.monotonic() - began
    assert isinstance(result, PlannerFinish) and result.reason == "deadline"
    assert result.metadata["interrupted"] == "model call"
    assert took < 1 + 4.0


async def test_the_deadline_covers_the_memory_read_and_observers() -> None:
    # Regression: the memory was read before the deadline's scope, so a hanging memory (or
    # its store) held run() for ever.
    class HangingMemory(BrokenMemory):
        async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot:
            await asyncio.Event().wait()
            return MemorySnapshot()

    planner = ReactPlanner(
        ScriptedLLMClient([answer("x")]),
        catalog(),
        memory=HangingMemory(reads=True),
        budgets=PlannerBudgets(deadline_s=0.5),
    )
    result = await bounded(planner.run("q", memory_key=KEY))
    assert isinstance(result, PlannerFinish) and result.reason == "deadline"
    assert result.metadata["interrupted"] == "memory"

    calls = {"n": 0}

    async def observer(event: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the first event (step_start) never returns
            await asyncio.Event().wait()

    planner = ReactPlanner(
        ScriptedLLMClient([answer("x")]), catalog(), event_callback=observer,
        budgets=PlannerBudgets(deadline_s=0.5),
    )  # fmt: skip
    result = await bounded(planner.run("q"))
    assert isinstance(result, PlannerFinish) and result.reason == "deadline"
    assert calls["n"] == 3  # step_start (cut), then budget and finish
