"""Steering: events, sanitisation limits, validation per type, the inbox, the guard inbox, and
the inbox driving a real ReactPlanner run (scripted JSON client, real tools)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import penguiflow_planner
import pytest
from anyio import wait_all_tasks_blocked
from penguiflow_planner import PlannerFinish, PlannerPause, ReactPlanner
from penguiflow_sessions.policy import ControlPolicy
from penguiflow_sessions.steering import (
    MAX_STEERING_DEPTH,
    MAX_STEERING_KEYS,
    MAX_STEERING_LIST_ITEMS,
    MAX_STEERING_PAYLOAD_BYTES,
    MAX_STEERING_STRING,
    InMemoryGuardInbox,
    SteeringCancelled,
    SteeringEvent,
    SteeringEventType,
    SteeringGuardEvent,
    SteeringInbox,
    SteeringValidationError,
    sanitize_payload,
    sanitize_steering_event,
    validate_steering_event,
)
from pydantic import BaseModel, ValidationError

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.errors import PenguiFlowError, UnknownNameError

E = SteeringEventType


def event(
    kind: SteeringEventType | str, payload: dict[str, Any] | None = None, **more: Any
) -> SteeringEvent:
    return SteeringEvent(
        session_id="s",
        task_id="t",
        event_type=kind,  # type: ignore[arg-type]  # strings too: Pydantic validates them
        payload=payload or {},
        **more,
    )


# -- the event ------------------------------------------------------------------------------


def test_event_defaults_and_injection_text() -> None:
    first, second = event("INJECT_CONTEXT", {"text": "hi"}), event(E.CANCEL)
    assert first.event_type is E.INJECT_CONTEXT and first.source == "user"
    assert first.event_id != second.event_id and first.created_at.tzinfo is not None
    body = json.loads(first.to_injection())["steering"]
    assert body == {
        "event_id": first.event_id, "task_id": "t", "event_type": "INJECT_CONTEXT",
        "payload": {"text": "hi"}, "created_at": first.created_at.isoformat(),
    }  # fmt: skip
    assert [k.value for k in E] == [
        "INJECT_CONTEXT", "REDIRECT", "CANCEL", "PRIORITIZE", "PAUSE", "RESUME", "APPROVE",
        "REJECT", "USER_MESSAGE",
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="event_type"):
        event("SHOUT")
    with pytest.raises(ValidationError, match="payload"):
        event("CANCEL", "stop")  # type: ignore[arg-type]


# -- sanitisation -----------------------------------------------------------------------------


def test_sanitising_cuts_each_structural_limit_with_a_marker() -> None:
    deep: Any = "bottom"
    for _ in range(MAX_STEERING_DEPTH + 2):
        deep = {"d": deep}
    raw = {
        "long": "x" * (MAX_STEERING_STRING + 10),
        "wide": {f"k{i}": i for i in range(MAX_STEERING_KEYS + 5)},
        "list": list(range(MAX_STEERING_LIST_ITEMS + 5)),
        "deep": deep,
        ("k" * 100): 1,
        "odd": object(),
        "nan": float("nan"),
        "tuple": (1, 2),
    }
    clean = sanitize_payload(raw)
    assert len(clean["long"]) == MAX_STEERING_STRING
    assert len(clean["wide"]) == MAX_STEERING_KEYS + 1 and clean["wide"]["__truncated_keys__"]
    assert clean["list"][-1] == "<truncated>" and len(clean["list"]) == MAX_STEERING_LIST_ITEMS + 1
    level: Any = clean["deep"]
    depth = 1
    while isinstance(level, dict):
        level, depth = level["d"], depth + 1
    assert level == "<truncated>" and depth == MAX_STEERING_DEPTH
    assert "k" * 64 in clean and clean["odd"].startswith("<object object")
    assert clean["nan"] == "nan" and clean["tuple"] == [1, 2]
    json.dumps(clean, allow_nan=False)  # JSON-safe
    assert sanitize_payload("just text") == {"value": "just text"}


def test_an_oversize_payload_is_summarised_or_refused_naming_the_limit() -> None:
    big = {f"k{i}": "y" * 1000 for i in range(20)}  # ~20 kB, each part within the limits
    summary = sanitize_steering_event(event("INJECT_CONTEXT", big)).payload
    assert summary["truncated"] is True and set(summary) == {"truncated", "summary"}
    assert len(summary["summary"]) == MAX_STEERING_STRING
    with pytest.raises(SteeringValidationError, match="max_steering_payload_bytes=16384") as raised:
        sanitize_steering_event(event("INJECT_CONTEXT", big), oversize="refuse")
    assert "bytes" in raised.value.errors[0]
    small_limit = sanitize_steering_event(
        event("INJECT_CONTEXT", {"text": "z" * 200}), max_payload_bytes=100
    )
    assert small_limit.payload["truncated"] is True
    ok = event("INJECT_CONTEXT", {"text": "fine"})
    assert sanitize_steering_event(ok, oversize="refuse").payload == {"text": "fine"}
    assert MAX_STEERING_PAYLOAD_BYTES == 16_384


def test_sanitising_survives_an_object_whose_str_raises() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert sanitize_payload({"h": Hostile()}) == {"h": "<unprintable Hostile>"}


# -- validation -------------------------------------------------------------------------------

VALID = [
    (E.INJECT_CONTEXT, {"text": "note", "scope": "task_only", "severity": "correction"}),
    (E.REDIRECT, {"goal": "new goal", "constraints": {"max": 3}}),
    (E.CANCEL, {"reason": "stop", "hard": True}),
    (E.CANCEL, {}),
    (E.PRIORITIZE, {"priority": 5}),
    (E.PAUSE, {"reason": "lunch"}),
    (E.RESUME, {}),
    (E.APPROVE, {"patch_id": "p1", "decision": "yes"}),
    (E.REJECT, {"resume_token": "tok"}),
    (E.USER_MESSAGE, {"text": "hello", "active_tasks": ["a"]}),
]
INVALID = [
    (E.INJECT_CONTEXT, {}, "'text'"),
    (E.INJECT_CONTEXT, {"text": "  "}, "'text'"),
    (E.INJECT_CONTEXT, {"text": "x", "scope": "everywhere"}, "'scope'"),
    (E.INJECT_CONTEXT, {"text": "x", "severity": "loud"}, "'severity'"),
    (E.REDIRECT, {"instruction": ""}, "'instruction'"),
    (E.REDIRECT, {"goal": "g", "constraints": [1]}, "'constraints'"),
    (E.CANCEL, {"reason": 3}, "'reason'"),
    (E.CANCEL, {"hard": "yes"}, "'hard'"),
    (E.PRIORITIZE, {"priority": "high"}, "'priority'"),
    (E.PRIORITIZE, {"priority": True}, "'priority'"),
    (E.APPROVE, {}, "'patch_id'"),
    (E.REJECT, {"patch_id": "p", "decision": 1}, "'decision'"),
    (E.PAUSE, {"reason": ["x"]}, "'reason'"),
    (E.USER_MESSAGE, {"text": ""}, "'text'"),
    (E.USER_MESSAGE, {"text": "x", "active_tasks": "a"}, "'active_tasks'"),
]


@pytest.mark.parametrize(("kind", "payload"), VALID)
def test_valid_payloads_pass(kind: SteeringEventType, payload: dict[str, Any]) -> None:
    validate_steering_event(event(kind, payload))


@pytest.mark.parametrize(("kind", "payload", "field"), INVALID)
def test_invalid_payloads_are_refused_naming_the_field(
    kind: SteeringEventType, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(SteeringValidationError) as raised:
        validate_steering_event(event(kind, payload))
    assert field in str(raised.value) and kind.value in str(raised.value)
    assert isinstance(raised.value, PenguiFlowError) and isinstance(raised.value, ValueError)


def test_every_problem_is_listed() -> None:
    with pytest.raises(SteeringValidationError) as raised:
        validate_steering_event(event(E.INJECT_CONTEXT, {"scope": "x", "severity": "y"}))
    assert len(raised.value.errors) == 3


# -- control policy ---------------------------------------------------------------------------


def test_destructive_events_from_others_need_confirmation() -> None:
    policy = ControlPolicy()
    assert policy.destructive_events == {E.CANCEL, E.REDIRECT}
    assert not policy.requires_confirmation(event(E.CANCEL))  # the user's own
    assert policy.requires_confirmation(event(E.CANCEL, source="agent"))
    assert not policy.requires_confirmation(event(E.CANCEL, {"confirmed": True}, source="agent"))
    assert policy.requires_confirmation(event(E.CANCEL, {"confirmed": "yes"}, source="agent"))
    assert not policy.requires_confirmation(event(E.PAUSE, source="agent"))
    assert not ControlPolicy(require_confirmation=False).requires_confirmation(
        event(E.REDIRECT, {"goal": "g"}, source="agent")
    )


# -- the inbox --------------------------------------------------------------------------------


async def test_cancel_sets_the_event_and_keeps_the_first_reason() -> None:
    inbox = SteeringInbox()
    assert not inbox.cancelled and inbox.cancel_reason is None
    assert await inbox.push(event(E.CANCEL, {"reason": "user stop"}))
    assert inbox.cancelled and inbox.cancel_event.is_set() and inbox.cancel_reason == "user stop"
    await inbox.push(event(E.CANCEL, {"reason": "second"}))
    assert inbox.cancel_reason == "user stop"
    other = SteeringInbox()
    other.push_nowait(event(E.CANCEL))
    assert other.cancel_reason == "cancelled"


async def test_drain_hands_each_event_out_once_in_order() -> None:
    inbox = SteeringInbox()
    sent = [event(E.INJECT_CONTEXT, {"text": str(i)}) for i in range(3)]
    for item in sent:
        assert inbox.push_nowait(item)
    assert inbox.has_event() and len(inbox) == 3
    assert inbox.drain() == sent
    assert inbox.drain() == [] and not inbox.has_event()


async def test_next_waits_for_an_event() -> None:
    inbox = SteeringInbox()
    waiter = asyncio.create_task(inbox.next())
    await wait_all_tasks_blocked()
    assert not waiter.done()
    pushed = event(E.PRIORITIZE, {"priority": 1})
    inbox.push_nowait(pushed)
    assert await waiter is pushed and not inbox.has_event()


async def test_pause_holds_wait_if_paused_until_resume() -> None:
    inbox = SteeringInbox()
    await inbox.wait_if_paused()  # not paused: returns at once
    inbox.push_nowait(event(E.PAUSE))
    assert inbox.paused
    waiter = asyncio.create_task(inbox.wait_if_paused())
    await wait_all_tasks_blocked()
    assert not waiter.done()
    inbox.push_nowait(event(E.RESUME))
    await waiter
    assert not inbox.paused


async def test_a_cancel_wakes_a_paused_task() -> None:
    inbox = SteeringInbox()
    inbox.push_nowait(event(E.PAUSE))
    waiter = asyncio.create_task(inbox.wait_if_paused())
    await wait_all_tasks_blocked()
    inbox.push_nowait(event(E.CANCEL, {"reason": "bye"}))
    await waiter
    inbox.push_nowait(event(E.PAUSE))  # a pause after a cancel does not hold it again
    await inbox.wait_if_paused()


async def test_user_messages_are_limited_until_drained() -> None:
    inbox = SteeringInbox(max_pending_user_messages=2)
    pushed = [inbox.push_nowait(event(E.USER_MESSAGE, {"text": str(i)})) for i in range(3)]
    assert pushed == [True, True, False] and inbox.pending_user_messages == 2
    assert inbox.push_nowait(event(E.INJECT_CONTEXT, {"text": "other kinds still go"}))
    inbox.drain()
    assert inbox.pending_user_messages == 0
    assert inbox.push_nowait(event(E.USER_MESSAGE, {"text": "again"}))


async def test_a_full_inbox_refuses_events_but_control_events_still_act() -> None:
    inbox = SteeringInbox(maxsize=1)
    assert inbox.push_nowait(event(E.INJECT_CONTEXT, {"text": "a"}))
    assert not inbox.push_nowait(event(E.INJECT_CONTEXT, {"text": "b"}))
    assert not inbox.push_nowait(event(E.USER_MESSAGE, {"text": "c"}))
    assert inbox.pending_user_messages == 0
    assert not inbox.push_nowait(event(E.PAUSE))
    assert inbox.paused
    assert not inbox.push_nowait(event(E.CANCEL))
    assert inbox.cancelled
    with pytest.raises(SteeringValidationError, match="maxsize"):
        SteeringInbox(maxsize=-1)


def test_steering_cancelled_is_the_planners_class() -> None:
    assert SteeringCancelled is penguiflow_planner.SteeringCancelled
    assert issubclass(SteeringCancelled, PenguiFlowError) and issubclass(
        SteeringCancelled, RuntimeError
    )


# -- the guard inbox --------------------------------------------------------------------------


class Evaluator:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def evaluate(self, item: SteeringGuardEvent) -> list[Any]:
        await self.release.wait()
        if item.event_type == "boom":
            raise RuntimeError("rule engine down")
        return [f"allow:{item.event_type}"]


async def test_guard_inbox_returns_verdicts_and_errors() -> None:
    evaluator = Evaluator()
    guard = InMemoryGuardInbox(evaluator)
    ok = await guard.submit(SteeringGuardEvent(event_type="tool_call", run_id="r1"))
    bad = await guard.submit(SteeringGuardEvent(event_type="boom", run_id="r1"))
    other = await guard.submit(SteeringGuardEvent(event_type="late", run_id="r2"))
    with pytest.raises(TimeoutError):
        await guard.await_response(ok, timeout_s=0)
    evaluator.release.set()
    assert (await guard.await_response(ok, timeout_s=5)).decisions == ["allow:tool_call"]
    assert (await guard.await_response(bad, timeout_s=5)).error == "rule engine down"
    await wait_all_tasks_blocked()
    assert guard.drain_responses("r1") == []
    assert [r.correlation_id for r in guard.drain_responses("r2")] == [other]
    with pytest.raises(UnknownNameError, match="correlation id"):
        await guard.await_response("nope", timeout_s=1)


# -- a real planner reading the inbox ---------------------------------------------------------


class Query(BaseModel):
    text: str


class Found(BaseModel):
    answer: str


def act(node: str, text: str) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": {"text": text}})


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": "final_response", "args": {"answer": text}})


Reply = str | Callable[[str], str]


class ScriptedClient:
    """A JSON LLM client replying from a script; it records each call's full text."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.texts: list[str] = []

    async def complete(self, *, messages: Sequence[Any], response_format: Any = None,
                       stream: bool = False, on_stream_chunk: Any = None) -> str:  # fmt: skip
        text = "\n".join(str(m["content"]) for m in messages)
        self.texts.append(text)
        reply = self.replies.pop(0)
        return reply(text) if callable(reply) else reply


class Probe:
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False


def planner_with(client: ScriptedClient, probe: Probe) -> ReactPlanner:
    @tool(desc="Search documents by text.")
    async def search(message: Query, ctx: Any) -> Found:
        return Found(answer=f"found {message.text}")

    @tool(desc="Waits until released.")
    async def wait(message: Query, ctx: Any) -> Found:
        probe.entered.set()
        try:
            await probe.release.wait()
        except asyncio.CancelledError:
            probe.cancelled = True
            raise
        return Found(answer="waited")

    @tool(desc="Needs a human's approval.")
    async def approve(message: Query, ctx: Any) -> Found:
        await ctx.pause("approval_required", {"what": message.text})
        return Found(answer="approved")

    registry = ModelRegistry()
    for func in (search, wait, approve):
        registry.register(func.__name__, Query, Found)
    catalog = build_catalog([Node(f, name=f.__name__) for f in (search, wait, approve)], registry)
    return ReactPlanner(llm_client=client, catalog=catalog)


async def test_an_injection_reaches_the_model_once() -> None:
    inbox = SteeringInbox()

    def inject_during_first_call(text: str) -> str:
        inbox.push_nowait(event(E.INJECT_CONTEXT, {"text": "prefer metric units"}))
        return act("search", "a")

    client = ScriptedClient([inject_during_first_call, act("search", "b"), answer("ok")])
    result = await planner_with(client, Probe()).run("q", steering=inbox)
    assert isinstance(result, PlannerFinish)
    seen = ["prefer metric units" in text for text in client.texts]
    assert seen == [False, True, False]
    assert not inbox.has_event()


async def test_a_cancel_through_the_inbox_cancels_the_running_tool() -> None:
    inbox, probe = SteeringInbox(), Probe()
    client = ScriptedClient([act("wait", "x"), answer("never")])
    run = asyncio.create_task(planner_with(client, probe).run("q", steering=inbox))
    await probe.entered.wait()
    inbox.push_nowait(event(E.CANCEL, {"reason": "user stop"}))
    with pytest.raises(SteeringCancelled, match="user stop"):
        await run
    assert probe.cancelled and len(client.texts) == 1


async def test_a_paused_inbox_holds_the_planner_until_resumed() -> None:
    inbox = SteeringInbox()
    inbox.push_nowait(event(E.PAUSE))
    client = ScriptedClient([answer("ok")])
    run = asyncio.create_task(planner_with(client, Probe()).run("q", steering=inbox))
    await wait_all_tasks_blocked()
    assert not run.done() and client.texts == []
    inbox.push_nowait(event(E.RESUME))
    assert isinstance(await run, PlannerFinish)


async def test_the_inbox_outlives_a_paused_run_and_carries_approval_into_the_resume() -> None:
    # The inbox belongs to the task: an APPROVE sent while the run is paused is kept and
    # read by the resumed run (PenguiFlow's issue #107 lost it with the run's inbox).
    inbox = SteeringInbox()
    client = ScriptedClient([act("approve", "refund"), answer("done")])
    planner = planner_with(client, Probe())
    paused = await planner.run("q", steering=inbox)
    assert isinstance(paused, PlannerPause)
    approval = event(E.APPROVE, {"resume_token": paused.resume_token, "decision": "yes"})
    assert inbox.push_nowait(approval)
    result = await planner.resume(paused.resume_token, "yes", steering=inbox)
    assert isinstance(result, PlannerFinish)
    history = result.metadata["trajectory_metadata"]["steering_history"]
    assert [(h["event_id"], h["event_type"]) for h in history] == [(approval.event_id, "APPROVE")]
    assert not inbox.has_event()
