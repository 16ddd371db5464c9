"""Planner events (`event_callback`), written from PenguiFlow 3.11's public API.

`REFERENCE` holds what `penguiflow==3.11.2` emits for the same scripts (the same tools, the
same model replies), recorded as (event_type, trajectory_step, node_name, has latency, extra
keys). Ours must emit the same, except where it differs on purpose; each such difference is
applied to the reference below, with where ours documents it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from penguiflow_planner import PlannerEvent, PlannerFinish, PlannerPause, ReactPlanner
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, tool

Shape = tuple[str, int, str | None, bool, frozenset[str]]


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


START = _keys("action_seq")
CHUNK = _keys("action_seq", "channel", "done", "phase", "text")
CHUNK_DONE_REF = _keys("channel", "done", "phase", "text")  # PenguiFlow's done chunk
CALL_START = _keys("action_seq", "args_json", "tool_call_id", "tool_name")
CALL_END = _keys("action_seq", "tool_call_id", "tool_name")
CALL_RESULT = _keys("action_seq", "result_json", "tool_call_id", "tool_name")
FINISH_REF = _keys("answer_action_seq", "cost", "reason")


def _model_call(step: int) -> list[Shape]:
    return [
        ("llm_stream_chunk", step, None, False, CHUNK),
        ("llm_stream_chunk", step, None, False, CHUNK_DONE_REF),
    ]


def _tool(step: int) -> list[Shape]:
    return [
        ("tool_call_start", step, None, False, CALL_START),
        ("tool_call_end", step, None, False, CALL_END),
        ("tool_call_result", step, None, False, CALL_RESULT),
    ]


REFERENCE: dict[str, list[Shape]] = {
    "tool_then_finish": [
        ("step_start", 0, None, False, START),
        *_model_call(0),
        *_tool(0),
        ("step_complete", 0, "search", True, _keys()),
        ("step_start", 1, None, False, START),
        *_model_call(1),
        ("finish", 1, None, False, FINISH_REF),
    ],
    "parallel": [
        ("step_start", 0, None, False, START),
        *_model_call(0),
        *_tool(0),
        *_tool(0),
        ("step_start", 1, None, False, START),
        *_model_call(1),
        ("finish", 1, None, False, FINISH_REF),
    ],
    "pause": [
        ("step_start", 0, None, False, START),
        *_model_call(0),
        *_tool(0),
    ],
    "resume": [
        ("resume", 1, None, False, _keys("user_input")),
        ("step_start", 1, None, False, START),
        *_model_call(1),
        ("finish", 1, None, False, FINISH_REF),
    ],
    "repair": [
        ("step_start", 0, None, False, START),
        *_model_call(0),
        *_model_call(0),
        ("finish", 0, None, False, FINISH_REF),
    ],
}


def ours_expected(name: str) -> list[Shape]:
    """The reference with our documented differences applied."""
    expected: list[Shape] = []
    for event_type, step, node, latency, keys in REFERENCE[name]:
        if keys == CHUNK_DONE_REF:
            # Every llm_stream_chunk carries action_seq (docs/planner.md, "Streaming the final
            # answer"); PenguiFlow's done chunk of the action phase lacks it.
            keys = CHUNK
        if event_type == "finish":
            # Ours adds the precise finish_reason (_endings.py docstring).
            keys = keys | {"finish_reason"}
        if event_type == "resume":
            # Pause and resume events name the pause by pause_ref (docs/planner.md, "Tokens
            # never appear in events"); PenguiFlow emits no pause event.
            keys = keys | {"pause_ref"}
        expected.append((event_type, step, node, latency, keys))
        if name == "repair" and event_type == "llm_stream_chunk" and len(expected) == 3:
            # Ours reports each repair round (_decide.py); PenguiFlow only calls again.
            expected.append(
                (
                    "planner_repair_attempt",
                    0,
                    None,
                    False,
                    _keys("action_seq", "attempt", "errors", "will_retry"),
                )
            )
    if name == "parallel":
        # Ours closes a parallel step with step_complete as it closes a tool step
        # (node_name "parallel"); PenguiFlow emits none for a parallel step.
        at = next(i for i, shape in enumerate(expected) if shape[0] == "step_start" and shape[1])
        expected.insert(at, ("step_complete", 0, "parallel", True, _keys()))
    if name == "pause":
        expected.append(("pause", 1, None, False, _keys("pause_ref", "payload", "reason")))
    return expected


def shapes(events: Sequence[PlannerEvent], *, with_step_complete_step: bool) -> list[Shape]:
    found: list[Shape] = []
    for event in events:
        step = event.trajectory_step
        if event.event_type == "step_complete" and not with_step_complete_step:
            step = 0  # compared on its own, in the test below
        found.append(
            (
                event.event_type,
                step,
                event.node_name,
                event.latency_ms is not None,
                frozenset(event.extra),
            )
        )
    return found


# -- the tools and the client (PenguiFlow 3.11's JSON client protocol) ----------------------------


class Query(BaseModel):
    text: str


class Found(BaseModel):
    answer: str


@tool(desc="Search documents by text.")
async def search(message: Query, ctx: Any) -> Found:
    return Found(answer=f"found {message.text}")


@tool(desc="Needs a human's approval.")
async def approve(message: Query, ctx: Any) -> Found:
    await ctx.pause("approval_required", {"what": message.text})
    return Found(answer="unreachable")


def catalog() -> list[Any]:
    registry = ModelRegistry()
    registry.register("search", Query, Found)
    registry.register("approve", Query, Found)
    return build_catalog([Node(search, name="search"), Node(approve, name="approve")], registry)


class JSONClient:
    def __init__(self, replies: Sequence[str]) -> None:
        self.replies = list(replies)

    async def complete(
        self,
        *,
        messages: Sequence[Any],
        response_format: Any = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> str:
        return self.replies.pop(0)


def reply(node: str, thought: str, **args: Any) -> str:
    return json.dumps({"thought": thought, "next_node": node, "args": args})


SEARCH = reply("search", "t1", text="x")
FINAL = reply("final_response", "t2", answer="done")
PARALLEL = reply(
    "parallel",
    "both",
    steps=[{"node": "search", "args": {"text": "a"}}, {"node": "search", "args": {"text": "b"}}],
)
APPROVE = reply("approve", "ask", text="x")


def make(replies: Sequence[str], callback: Any) -> ReactPlanner:
    return ReactPlanner(llm_client=JSONClient(replies), catalog=catalog(), event_callback=callback)


async def scenario(name: str) -> list[PlannerEvent]:
    events: list[PlannerEvent] = []
    if name == "tool_then_finish":
        await make([SEARCH, FINAL], events.append).run("find x")
    elif name == "parallel":
        await make([PARALLEL, FINAL], events.append).run("par")
    elif name in ("pause", "resume"):
        planner = make([APPROVE, FINAL], events.append)
        paused = await planner.run("needs approval")
        assert isinstance(paused, PlannerPause)
        if name == "resume":
            events.clear()
            await planner.resume(paused.resume_token, user_input="yes")
    elif name == "repair":
        await make(["garbage, not json", FINAL], events.append).run("rep")
    return events


# -- the sequences ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFERENCE))
async def test_event_sequence_matches_penguiflow(name: str) -> None:
    events = await scenario(name)
    assert shapes(events, with_step_complete_step=False) == ours_expected(name)


async def test_step_complete_names_the_step_it_completes() -> None:
    events = await scenario("tool_then_finish")
    completes = [e.trajectory_step for e in events if e.event_type == "step_complete"]
    assert completes == [0]


async def test_tool_call_events_carry_penguiflows_values() -> None:
    events = await scenario("tool_then_finish")
    extras = {e.event_type: dict(e.extra) for e in events if e.event_type.startswith("tool_")}
    assert extras["tool_call_start"] == {
        "tool_call_id": "call_1_0",
        "tool_name": "search",
        "args_json": '{"text": "x"}',
        "action_seq": 1,
    }
    assert extras["tool_call_end"] == {
        "tool_call_id": "call_1_0",
        "tool_name": "search",
        "action_seq": 1,
    }
    assert extras["tool_call_result"]["result_json"] == '{"answer": "found x"}'
    complete = next(e for e in events if e.event_type == "step_complete")
    assert complete.thought == "t1" and complete.latency_ms is not None
    assert complete.latency_ms >= 0
    finish = events[-1]
    assert finish.thought == "t2"
    assert finish.extra["reason"] == "answer_complete"
    assert finish.extra["answer_action_seq"] == 2
    assert finish.extra["cost"] == {
        "total_cost_usd": 0.0,
        "main_llm_calls": 2,
        "reflection_llm_calls": 0,
        "summarizer_llm_calls": 0,
    }


async def test_parallel_branches_have_their_own_call_ids() -> None:
    events = await scenario("parallel")
    starts = [dict(e.extra) for e in events if e.event_type == "tool_call_start"]
    assert [(s["tool_call_id"], s["args_json"]) for s in starts] == [
        ("call_1_parallel_0", '{"text": "a"}'),
        ("call_1_parallel_1", '{"text": "b"}'),
    ]


async def test_a_pause_is_reported_as_the_tools_result_and_by_pause_ref() -> None:
    events = await scenario("pause")
    result = next(e for e in events if e.event_type == "tool_call_result")
    assert json.loads(result.extra["result_json"]) == {
        "pause": "approval_required",
        "payload": {"what": "x"},
    }
    pause = events[-1]
    assert pause.event_type == "pause"
    assert pause.extra["reason"] == "approval_required"
    assert pause.extra["payload"] == {"what": "x"}


async def test_no_event_carries_the_resume_token() -> None:
    events: list[PlannerEvent] = []
    planner = make([APPROVE, FINAL], events.append)
    paused = await planner.run("needs approval")
    assert isinstance(paused, PlannerPause)
    await planner.resume(paused.resume_token, user_input="yes")
    dumped = json.dumps([e.to_payload() for e in events], default=str)
    assert paused.resume_token not in dumped
    refs = [e.extra["pause_ref"] for e in events if e.event_type in ("pause", "resume")]
    assert refs == [paused.ref, paused.ref]
    assert paused.ref != paused.resume_token


# -- PlannerEvent and callbacks --------------------------------------------------------------


def test_to_payload_is_flat_and_safe_for_logging() -> None:
    event = PlannerEvent(
        event_type="x",
        ts=1.0,
        trajectory_step=2,
        node_name="n",
        extra={"foo": 1, "msg": "m", "name": "nm", "args": 3, "levelname": 4, "step": 9},
    )
    # As PenguiFlow: event, ts, step, the fields that are set, then extra without the keys a
    # LogRecord owns. Ours on purpose (the `key not in payload` check in _events.py): extra
    # never overrides the fixed keys; PenguiFlow's gives {"step": 9} here.
    assert event.to_payload() == {"event": "x", "ts": 1.0, "step": 2, "node_name": "n", "foo": 1}
    logging.getLogger("penguiflow.test").info("ok", extra=event.to_payload())


async def test_a_failing_callback_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def flaky(event: PlannerEvent) -> None:
        seen.append(event.event_type)
        raise RuntimeError("observer bug")

    with caplog.at_level(logging.ERROR, logger="penguiflow.planner"):
        result = await make([SEARCH, FINAL], flaky).run("find x")
    assert isinstance(result, PlannerFinish) and result.reason == "answer_complete"
    assert seen[0] == "step_start" and seen[-1] == "finish"
    assert "observer bug" in caplog.text


async def test_async_callbacks_are_awaited_in_order() -> None:
    # Ours awaits an async callback (PlannerEventCallback's docstring); PenguiFlow calls it and
    # drops the coroutine (a "never awaited" RuntimeWarning, and no event observed).
    seen: list[str] = []

    async def observe(event: PlannerEvent) -> None:
        seen.append(event.event_type)

    result = await make([SEARCH, FINAL], observe).run("find x")
    assert isinstance(result, PlannerFinish)
    assert [s[0] for s in ours_expected("tool_then_finish")] == seen


async def test_events_reach_a_callback_as_planner_events() -> None:
    seen: list[Any] = []
    await make([FINAL], seen.append).run("q")
    assert all(isinstance(e, PlannerEvent) for e in seen)
    assert all(isinstance(e.extra, Mapping) for e in seen)
    assert all(e.to_payload()["event"] == e.event_type for e in seen)
