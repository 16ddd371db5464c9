"""`run()` always returns a typed ending, within its deadline, whatever the model, the tools,
the client or a strategy do; only the caller's own cancellation propagates.

Each hostile input here used to raise out of `run()` or hang it: a reply nesting 100,000
deep, arguments nesting 600 deep, a huge reply, an integer JSON will not convert, a tool that
raises `CancelledError`, a backoff that overflows, a client raising something other than
`LLMError`, a memory or a join that fails. No sleeps synchronise these tests.

PenguiFlow 3.11's API: an unusable reply is a repair round (a `planner_repair_attempt`
event, and the model is shown its reply and what was wrong), not a step of the trajectory;
unknown tools and a bad join are steps with an error, which the model sees.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from penguiflow_planner import (
    PlannerBudgets,
    PlannerEvent,
    PlannerFinish,
    ReactPlanner,
    ReflectionConfig,
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
    return json.dumps({"thought": "done", "next_node": "final_response", "args": {"answer": text}})


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


class Recorded:
    """A planner whose events are kept, to read its repair rounds."""

    def __init__(self, llm: Any, specs: list[NodeSpec] | None = None, **options: Any) -> None:
        self.events: list[PlannerEvent] = []
        self.planner = ReactPlanner(
            llm_client=llm,
            catalog=specs if specs is not None else catalog(),
            event_callback=self.events.append,
            **options,
        )

    def repair_errors(self) -> list[list[str]]:
        """The errors of each repair round, in order."""
        return [
            list(event.extra["errors"])
            for event in self.events
            if event.event_type == "planner_repair_attempt"
        ]


def planner(llm: Any, specs: list[NodeSpec] | None = None, **options: Any) -> ReactPlanner:
    return ReactPlanner(
        llm_client=llm, catalog=specs if specs is not None else catalog(), **options
    )


async def bounded(awaitable: Any, seconds: float = 20.0) -> Any:
    """A hang (the bug these tests look for) fails the test instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, seconds)


def finished(result: Any) -> PlannerFinish:
    assert isinstance(result, PlannerFinish)
    return result


def step_errors(result: PlannerFinish) -> list[str | None]:
    return [step["error"] for step in result.metadata["steps"]]


def answered(result: Any, text: str) -> None:
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload["raw_answer"] == text


# -- replies that are too big or too deep -----------------------------------------------------


async def test_a_reply_nesting_100000_deep_is_a_repair_round() -> None:
    # Regression: the JSON scan raised RecursionError out of run().
    deep = (
        '{"thought": "x", "next_node": "final_response", "args": {"answer": '
        + nested(100_000)
        + "}}"
    )
    llm = ScriptedLLMClient([deep, answer("flat now")])
    recorded = Recorded(llm)
    result = await bounded(recorded.planner.run("q"))
    answered(result, "flat now")
    assert result.metadata["step_count"] == 0  # a repair round is not a step
    (errors,) = recorded.repair_errors()
    assert len(errors) == 1 and errors[0].startswith("nesting deeper than 64")
    assert "nesting deeper than 64" in llm.calls[1].messages[-1].content
    kept = llm.calls[1].messages[-2]  # the reply, shown back to the model
    assert kept.role == "assistant"
    assert len(kept.content) < 5_000 and kept.content.endswith("more characters]")
    result = finished(await bounded(planner(ScriptedLLMClient([deep] * 4)).run("q")))
    assert result.reason == "no_path" and result.finish_reason == "repair_failed"


async def test_tool_arguments_nesting_600_deep_are_a_repair_round() -> None:
    # Regression: the placeholder scan recursed per level and raised RecursionError.
    deep_args = '{"next_node": "search", "args": {"text": "x", "extra": ' + nested(600) + "}}"
    recorded = Recorded(ScriptedLLMClient([deep_args, answer("ok")]))
    answered(await bounded(recorded.planner.run("q")), "ok")
    assert recorded.repair_errors()[0][0].startswith("nesting deeper than 64")
    roomy = Recorded(ScriptedLLMClient([deep_args, answer("ok")]), max_json_depth=256)
    answered(await bounded(roomy.planner.run("q")), "ok")  # still refused: 600 > 256
    assert roomy.repair_errors()[0][0].startswith("nesting deeper than 256")


async def test_a_huge_reply_is_refused_by_size_before_it_is_scanned() -> None:
    huge = answer("x" * 1_200_000)
    recorded = Recorded(ScriptedLLMClient([huge, answer("short")]))
    answered(await bounded(recorded.planner.run("q")), "short")
    size = len(huge.encode())
    assert recorded.repair_errors() == [
        [f"reply too large: {size} bytes, limit 1000000; reply with one short JSON object"]
    ]
    small = Recorded(ScriptedLLMClient(["é" * 30, answer("ok")]), max_reply_bytes=50)
    await bounded(small.planner.run("q"))  # 30 characters, 60 bytes
    assert small.repair_errors()[0][0].startswith("reply too large: 60 bytes, limit 50")


def test_parsing_limits_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="max_json_depth must be between 1 and 256"):
        planner(ScriptedLLMClient([]), max_json_depth=10_000)
    with pytest.raises(ConfigurationError, match="max_reply_bytes must be an int >= 1, got 0"):
        planner(ScriptedLLMClient([]), max_reply_bytes=0)


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
    reply = '{"next_node": "final_response", "args": {"answer": ' + "9" * 5_000 + "}}"
    recorded = Recorded(ScriptedLLMClient([reply, answer("ok")]))
    answered(await bounded(recorded.planner.run("q")), "ok")
    assert len(recorded.repair_errors()) == 1
    assert recorded.repair_errors()[0][0].startswith("no JSON object found")


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
    steps = [{"node": "orphan", "args": {"key": "p"}}] * 2
    plan = json.dumps({"next_node": "parallel", "args": {"steps": steps}})
    llm = ScriptedLLMClient([act("orphan", key="k"), plan, answer("the job was cancelled")])
    before = set(asyncio.all_tasks())
    result = await bounded(planner(llm, catalog_of((orphan, policy))).run("q"))
    answered(result, "the job was cancelled")
    single, parallel = result.metadata["steps"]
    assert single["error"] == "tool 'orphan' raised CancelledError: CancelledError"
    branches = parallel["observation"]["branches"]
    assert [branch["error"] for branch in branches] == [single["error"]] * 2
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
        planner(llm, catalog_of((wait, NodePolicy(validate="none")))).run("q")
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
    result = await bounded(planner(llm, catalog_of((broken, policy))).run("q"), 60)
    answered(result, "the tool is down")
    assert attempts["n"] == 1_025  # the retry after 1,024 would have waited for ever
    assert step_errors(result) == ["tool 'broken' raised ConnectionError: attempt 1025 failed"]


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
    result = finished(await bounded(planner(llm).run("q")))
    assert result.reason == "no_path" and result.finish_reason == "no_path"
    assert result.metadata["error"] == text
    assert result.payload == {"titles": ["doc about a"]}  # the best effort so far


async def test_a_script_that_runs_out_ends_with_no_path() -> None:
    result = finished(await bounded(planner(ScriptedLLMClient([])).run("q")))
    assert result.reason == "no_path" and result.finish_reason == "no_path"
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


async def test_a_memory_that_fails_never_ends_the_run_with_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # PenguiFlow's: a memory whose read fails gives no context, and the run goes on (it
    # used to end the run with reason "error"); the failure is logged.
    llm = ScriptedLLMClient([answer("x")])
    broken = planner(llm, short_term_memory=BrokenMemory(reads=True))
    with caplog.at_level("WARNING", logger="penguiflow.planner"):
        result = await bounded(broken.run("q", memory_key=KEY))
    answered(result, "x")
    assert "conversation_memory" not in json.dumps([m.content for m in llm.calls[0].messages])
    assert "OSError: memory store unreachable" in caplog.text


async def test_a_memory_whose_write_fails_keeps_the_answer_and_reports_it() -> None:
    broken = planner(ScriptedLLMClient([answer("x")]), short_term_memory=BrokenMemory(reads=False))
    result = await bounded(broken.run("q", memory_key=KEY))  # the answer stands
    answered(result, "x")
    assert result.metadata["memory_error"] == "OSError: memory store unreachable"


class ExplodingJoin:
    name = "exploding"

    async def join(self, request: JoinRequest) -> JoinResult:
        raise ZeroDivisionError("a bug in a join strategy")


async def test_a_failing_join_strategy_and_an_unknown_join_name() -> None:
    # The old dialect ({"plan": [...], "join": ...}) is still read.
    plan = {"plan": [{"node": "search", "args": {"text": "a"}}] * 2}
    llm = ScriptedLLMClient([json.dumps(plan)])
    result = finished(await bounded(planner(llm, join_strategy=ExplodingJoin()).run("q")))
    assert result.reason == "no_path" and result.finish_reason == "error"
    assert result.metadata["error"].startswith(
        "the run failed during parallel tools search, search: ZeroDivisionError"
    )
    llm = ScriptedLLMClient([json.dumps({**plan, "join": "vote"}), answer("ok")])
    result = await bounded(planner(llm).run("q"))
    answered(result, "ok")  # an error step the model sees, then the answer
    (error,) = step_errors(result)
    assert error is not None
    assert error.startswith("parallel plan rejected, nothing ran: ")
    assert "no join strategy 'vote'; use one of:" in error
    assert '"error": "parallel plan rejected' in llm.calls[1].messages[-1].content


async def test_a_reviewer_raising_anything_is_skipped() -> None:
    critic = ScriptedLLMClient([TypeError("critic bug")])
    llm = ScriptedLLMClient([answer("draft")])
    reviewed = planner(
        llm,
        reflection_config=ReflectionConfig(enabled=True, use_separate_llm=True),
        reflection_llm=critic,
    )
    result = await bounded(reviewed.run("q"))
    answered(result, "draft")
    assert len(critic.calls) == 1  # the critic was asked once, and its failure skipped
    assert result.metadata["reflection"] == {"skipped": True}


# -- the deadline covers every await ----------------------------------------------------------
# `bounded(..., 5)`: a generous margin over the 1 s deadline, not a benchmark.


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
    slow = planner(
        llm, catalog_of((forever, NodePolicy(validate="none"))),
        budgets=PlannerBudgets(deadline_s=1),
    )  # fmt: skip
    result = finished(await bounded(slow.run("q"), 1 + 4.0))
    assert result.reason == "budget_exhausted" and result.finish_reason == "deadline"
    assert result.metadata["interrupted"] == "tool forever" and cancelled.is_set()


async def test_deadline_1s_ends_a_model_call_that_never_returns() -> None:
    async def never(messages: list[LLMMessage]) -> str:
        await asyncio.Event().wait()
        return answer("unreachable")

    slow = planner(ScriptedLLMClient([never]), deadline_s=1)
    result = finished(await bounded(slow.run("q"), 1 + 4.0))
    assert result.reason == "budget_exhausted" and result.finish_reason == "deadline"
    assert result.metadata["interrupted"] == "model call"


async def test_the_deadline_covers_the_memory_read_and_observers() -> None:
    # Regression: the memory was read before the deadline's scope, so a hanging memory (or
    # its store) held run() for ever.
    class HangingMemory(BrokenMemory):
        async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot:
            await asyncio.Event().wait()
            return MemorySnapshot()

    hanging = planner(
        ScriptedLLMClient([answer("x")]),
        short_term_memory=HangingMemory(reads=True),
        budgets=PlannerBudgets(deadline_s=0.5),
    )
    result = finished(await bounded(hanging.run("q", memory_key=KEY)))
    assert result.reason == "budget_exhausted" and result.finish_reason == "deadline"
    assert result.metadata["interrupted"] == "memory"

    seen: list[str] = []

    async def observer(event: PlannerEvent) -> None:
        seen.append(event.event_type)
        if len(seen) == 1:  # the first event (step_start) never returns
            await asyncio.Event().wait()

    watched = planner(
        ScriptedLLMClient([answer("x")]), event_callback=observer,
        budgets=PlannerBudgets(deadline_s=0.5),
    )  # fmt: skip
    result = finished(await bounded(watched.run("q")))
    assert result.reason == "budget_exhausted" and result.finish_reason == "deadline"
    assert seen == ["step_start", "budget_exhausted", "finish"]  # step_start was cut
