"""`ReactPlanner.run`, `resume`, `pause` and `step`, written from PenguiFlow 3.11's public API
(each behaviour checked against `penguiflow==3.11.2` driven by the same scripted JSON client).

The client here is shaped like a PenguiFlow 3.11 JSON client: `complete(*, messages, ...)`
returning the reply text. Steering uses a small fake with the surface of PenguiFlow's
`SteeringInbox` (`cancelled`, `cancel_reason`, `cancel_event`, `has_event()`, `drain()`,
`wait_if_paused()`); nothing waits on time, only on events and on every task being blocked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from anyio import wait_all_tasks_blocked
from penguiflow_planner import (
    PlannerAction,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    SteeringCancelled,
    Trajectory,
)
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.errors import PenguiFlowError, UsageError
from penguiflow.memory import MemoryKey

# -- a PenguiFlow 3.11 style client and tools ----------------------------------------------------

Reply = str | Callable[[list[dict[str, str]]], str | Awaitable[str]]


def _plain(message: Any) -> dict[str, str]:
    if isinstance(message, Mapping):
        return {"role": str(message["role"]), "content": str(message["content"])}
    return {"role": str(message.role), "content": str(message.content)}


class JSONClient:
    """PenguiFlow's JSON client protocol: replies in order, records every call's messages."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.calls: list[list[dict[str, str]]] = []

    async def complete(
        self,
        *,
        messages: Sequence[Any],
        response_format: Any = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> str:
        seen = [_plain(message) for message in messages]
        self.calls.append(seen)
        reply = self.replies.pop(0)
        if callable(reply):
            made = reply(seen)
            return made if isinstance(made, str) else await made
        return reply

    def text(self, call: int) -> str:
        return "\n".join(message["content"] for message in self.calls[call])

    def all_text(self) -> str:
        return "\n".join(self.text(index) for index in range(len(self.calls)))


def act(node: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": "final_response", "args": {"answer": text}})


class Query(BaseModel):
    text: str


class Found(BaseModel):
    answer: str


@dataclass
class Probe:
    """What the tools saw and did, for the assertions."""

    tool_contexts: list[Mapping[str, Any]] = field(default_factory=list)
    llm_contexts: list[dict[str, Any]] = field(default_factory=list)
    continued_after_pause: bool = False
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    tool_cancelled: bool = False
    clock: list[float] = field(default_factory=lambda: [0.0])
    planner: ReactPlanner | None = None
    pause_returned: Any = None


def build(probe: Probe) -> list[Any]:
    @tool(desc="Search documents by text.")
    async def search(message: Query, ctx: Any) -> Found:
        probe.tool_contexts.append(ctx.tool_context)
        probe.llm_contexts.append(dict(ctx.llm_context))
        return Found(answer=f"found {message.text}")

    @tool(desc="Needs a human's approval.")
    async def approve(message: Query, ctx: Any) -> Found:
        probe.tool_contexts.append(ctx.tool_context)
        await ctx.pause("approval_required", {"what": message.text})
        probe.continued_after_pause = True
        return Found(answer="unreachable")

    @tool(desc="Takes four seconds of the planner's clock.")
    async def slow(message: Query, ctx: Any) -> Found:
        probe.clock[0] += 4.0
        return Found(answer="slow done")

    @tool(desc="Waits until released.")
    async def wait(message: Query, ctx: Any) -> Found:
        probe.entered.set()
        try:
            await probe.release.wait()
        except asyncio.CancelledError:
            probe.tool_cancelled = True
            raise
        return Found(answer=f"waited {message.text}")

    @tool(desc="Asks the planner itself to pause.")
    async def ask(message: Query, ctx: Any) -> Found:
        assert probe.planner is not None
        probe.pause_returned = await probe.planner.pause("await_input", {"q": message.text})
        return Found(answer="asked")

    registry = ModelRegistry()
    nodes = []
    for func in (search, approve, slow, wait, ask):
        registry.register(func.__name__, Query, Found)
        nodes.append(Node(func, name=func.__name__))
    return build_catalog(nodes, registry)


def make(
    replies: Sequence[Reply], probe: Probe | None = None, **options: Any
) -> tuple[ReactPlanner, JSONClient, Probe]:
    probe = probe or Probe()
    client = JSONClient(replies)
    planner = ReactPlanner(llm_client=client, catalog=build(probe), **options)
    probe.planner = planner
    return planner, client, probe


# -- run(): the two contexts ----------------------------------------------------------------


async def test_llm_context_must_be_json_and_fails_before_the_model_is_called() -> None:
    planner, client, _ = make([answer("x")])
    # PenguiFlow raises TypeError("llm_context must be JSON-serializable: ..."); ours is a
    # TypeError too, and says where non-JSON objects belong.
    with pytest.raises(TypeError, match="llm_context must be JSON-serializable") as raised:
        await planner.run("q", llm_context={"client": object()})
    assert isinstance(raised.value, PenguiFlowError)
    assert "tool_context" in str(raised.value)
    assert client.calls == []


async def test_llm_context_is_shown_to_the_model_and_tool_context_only_to_tools() -> None:
    secret_client = object()
    planner, client, probe = make([act("search", text="x"), answer("done")])
    result = await planner.run(
        "find x",
        llm_context={"lang": "en", "units": "metric"},
        tool_context={"api_key": "sk-s3cr3t-value", "client": secret_client, "trace_id": "t1"},
    )
    assert isinstance(result, PlannerFinish) and result.reason == "answer_complete"
    # The model sees llm_context...
    assert '"lang": "en"' in client.text(0) and '"units": "metric"' in client.text(0)
    # ...and never anything of tool_context, in any call.
    everything = client.all_text()
    assert "s3cr3t" not in everything and "api_key" not in everything
    assert "object at 0x" not in everything
    # The tool gets both: the same objects in tool_context, a copy of llm_context.
    assert probe.tool_contexts[0]["client"] is secret_client
    assert probe.tool_contexts[0]["api_key"] == "sk-s3cr3t-value"
    assert probe.llm_contexts[0] == {"lang": "en", "units": "metric"}
    assert result.metadata["llm_context"] == {"lang": "en", "units": "metric"}


async def test_context_meta_is_a_deprecated_name_for_llm_context() -> None:
    planner, client, _ = make([answer("x")])
    with pytest.warns(DeprecationWarning, match="context_meta"):
        result = await planner.run("q", context_meta={"m": 1})
    assert isinstance(result, PlannerFinish)
    assert result.metadata["llm_context"] == {"m": 1}
    assert '"m": 1' in client.text(0)


# -- resume() ------------------------------------------------------------------------------


async def test_unknown_and_used_tokens_raise_key_error() -> None:
    planner, client, _ = make([act("approve", text="refund"), answer("ok")])
    with pytest.raises(KeyError):
        await planner.resume("no-such-token")
    paused = await planner.run("refund it")
    assert isinstance(paused, PlannerPause) and paused.reason == "approval_required"
    assert paused.payload == {"what": "refund"}
    assert isinstance(await planner.resume(paused.resume_token, "yes"), PlannerFinish)
    calls = len(client.calls)
    with pytest.raises(KeyError) as raised:
        await planner.resume(paused.resume_token, "again")
    # Ours never repeats the token in the message (it is a bearer secret); PenguiFlow's does.
    assert paused.resume_token not in str(raised.value)
    assert len(client.calls) == calls


async def test_user_input_reaches_the_model_and_the_paused_tool_does_not_continue() -> None:
    planner, client, probe = make([act("approve", text="refund"), answer("refunded")])
    paused = await planner.run("refund it")
    assert isinstance(paused, PlannerPause)
    result = await planner.resume(paused.resume_token, user_input="yes, approved by Ada")
    assert isinstance(result, PlannerFinish) and result.payload["raw_answer"] == "refunded"
    # The wording of the line is ours (prompts.py `resume_input`); PenguiFlow writes
    # "Resume input: ...". What matters is that the human's answer is the model's last input.
    assert "yes, approved by Ada" in client.calls[1][-1]["content"]
    assert probe.continued_after_pause is False
    assert "unreachable" not in client.all_text()


async def test_resume_with_a_new_tool_context_else_the_saved_one() -> None:
    replies = [act("approve", text="a"), act("search", text="b"), answer("ok")]
    planner, _, probe = make(replies)
    paused = await planner.run("q", tool_context={"user": "ada"})
    assert isinstance(paused, PlannerPause)
    await planner.resume(paused.resume_token, tool_context={"user": "bob"})
    assert [dict(c)["user"] for c in probe.tool_contexts] == ["ada", "bob"]

    planner, _, probe = make(replies)
    paused = await planner.run("q", tool_context={"user": "ada"})
    assert isinstance(paused, PlannerPause)
    await planner.resume(paused.resume_token)
    assert [dict(c)["user"] for c in probe.tool_contexts] == ["ada", "ada"]


async def test_budgets_survive_a_pause_and_paused_time_is_not_charged() -> None:
    probe = Probe()
    planner, _, _ = make(
        [act("slow", text="1"), act("approve", text="x"), act("slow", text="2"), answer("ok")],
        probe,
        deadline_s=10,
        time_source=lambda: probe.clock[0],
    )
    paused = await planner.run("q")
    assert isinstance(paused, PlannerPause) and probe.clock[0] == 4.0
    probe.clock[0] += 1000.0  # a long wait for the human: not running time
    result = await planner.resume(paused.resume_token, "go")
    # As PenguiFlow: 4 s before the pause and 4 s after it are charged, the 1000 s are not.
    assert isinstance(result, PlannerFinish) and result.reason == "answer_complete"
    assert result.metadata["constraints"]["deadline_remaining_s"] == pytest.approx(2.0, abs=0.01)
    assert result.metadata["constraints"]["deadline_triggered"] is False
    assert result.metadata["step_count"] == 3  # the steps before the pause are kept


async def test_a_custom_time_source_is_the_only_clock_of_the_budget() -> None:
    probe = Probe()
    planner, _, _ = make(
        [act("slow", text="1"), act("approve", text="x"), act("slow", text="2"), answer("ok")],
        probe,
        deadline_s=10,
        time_source=lambda: probe.clock[0],
    )
    paused = await planner.run("q")
    assert isinstance(paused, PlannerPause)
    probe.clock[0] += 1000.0
    result = await planner.resume(paused.resume_token, "go")
    # PenguiFlow reports exactly 2.0: only its time_source is read.
    assert isinstance(result, PlannerFinish)
    assert result.metadata["constraints"]["deadline_remaining_s"] == 2.0


async def test_a_deadline_spent_before_the_pause_stays_spent_after_it() -> None:
    probe = Probe()
    replies = [act("slow", text="1"), act("slow", text="2"), act("approve", text="x")]
    planner, client, _ = make(
        [*replies, act("slow", text="3"), answer("too late")],
        probe,
        deadline_s=10,
        time_source=lambda: probe.clock[0],
    )
    paused = await planner.run("q")
    assert isinstance(paused, PlannerPause)
    probe.clock[0] += 1000.0
    result = await planner.resume(paused.resume_token, "go")
    assert isinstance(result, PlannerFinish) and result.reason == "budget_exhausted"
    assert result.metadata["constraints"]["deadline_triggered"] is True
    assert len(client.calls) == 4  # 8 s + 4 s > 10 s: no call after the third slow step


# -- concurrency ---------------------------------------------------------------------------


def _router(per_query: dict[str, list[str]], order: list[str]) -> Callable[..., str]:
    def reply(messages: list[dict[str, str]]) -> str:
        text = "\n".join(m["content"] for m in messages)
        for query, replies in per_query.items():
            if query in text:
                order.append(query)
                return replies.pop(0)
        raise AssertionError(f"no script for {text[:200]}")

    return reply


async def test_runs_of_one_session_are_serialised() -> None:
    order: list[str] = []
    per_query = {
        "first-run": [act("wait", text="1"), answer("first")],
        "second-run": [answer("second")],
    }
    route = _router(per_query, order)
    planner, _, probe = make([route] * 3)
    first = asyncio.create_task(planner.run("first-run", tool_context={"session_id": "s1"}))
    await probe.entered.wait()
    second = asyncio.create_task(planner.run("second-run", tool_context={"session_id": "s1"}))
    await wait_all_tasks_blocked()
    assert order == ["first-run"]  # the second run waits for the session
    probe.release.set()
    results = await asyncio.gather(first, second)
    assert [r.payload["raw_answer"] for r in results] == ["first", "second"]
    assert order == ["first-run", "first-run", "second-run"]


async def test_an_explicit_memory_key_names_the_session_without_memory() -> None:
    order: list[str] = []
    per_query = {
        "first-run": [act("wait", text="1"), answer("first")],
        "second-run": [answer("second")],
    }
    route = _router(per_query, order)
    planner, _, probe = make([route] * 3)
    key = MemoryKey("acme", "ada", "s1")
    first = asyncio.create_task(planner.run("first-run", memory_key=key))
    await probe.entered.wait()
    second = asyncio.create_task(planner.run("second-run", memory_key=key))
    try:
        await wait_all_tasks_blocked()
        assert order == ["first-run"]
    finally:
        probe.release.set()
        await asyncio.gather(first, second)


async def test_runs_of_different_sessions_and_without_one_are_not() -> None:
    # Runs without a session go concurrently here (ReactPlanner's docstring); PenguiFlow
    # serialises them all behind one fallback lock. Different sessions run at once in both.
    order: list[str] = []
    per_query = {
        "first-run": [act("wait", text="1"), answer("first")],
        "other-session": [answer("other")],
        "no-session": [answer("none")],
    }
    route = _router(per_query, order)
    planner, _, probe = make([route] * 4)
    first = asyncio.create_task(planner.run("first-run", tool_context={"session_id": "s1"}))
    await probe.entered.wait()
    other = await planner.run("other-session", tool_context={"session_id": "s2"})
    loose = await planner.run("no-session")
    assert isinstance(other, PlannerFinish) and isinstance(loose, PlannerFinish)
    assert not first.done()
    probe.release.set()
    assert isinstance(await first, PlannerFinish)


# -- pause() and step() ----------------------------------------------------------------------


async def test_pause_outside_a_run_is_a_runtime_error() -> None:
    planner, _, _ = make([])
    # PenguiFlow: RuntimeError("pause() requires an active planner run").
    with pytest.raises(RuntimeError, match="inside a run") as raised:
        await planner.pause("await_input", {"a": 1})
    assert isinstance(raised.value, UsageError)


async def test_pause_inside_a_run_returns_the_pause_and_the_run_ends_with_it() -> None:
    planner, client, probe = make([act("ask", text="which city?"), answer("Lisbon")])
    result = await planner.run("plan a trip")
    assert isinstance(probe.pause_returned, PlannerPause)
    assert probe.pause_returned.reason == "await_input"
    assert probe.pause_returned.payload == {"q": "which city?"}
    # Ours differs on purpose (ReactPlanner.pause docstring): the run ends with that pause, so
    # the returned token is the one that resumes it. PenguiFlow hands the tool a pause and
    # then keeps planning, leaving a token that nothing waits on.
    assert isinstance(result, PlannerPause)
    assert result.resume_token == probe.pause_returned.resume_token
    assert len(client.calls) == 1
    finished = await planner.resume(result.resume_token, "Lisbon")
    assert isinstance(finished, PlannerFinish) and finished.payload["raw_answer"] == "Lisbon"


async def test_step_asks_the_model_once_and_executes_nothing() -> None:
    planner, client, probe = make([act("search", text="penguins")])
    action = await planner.step(Trajectory(query="q", llm_context={"k": 1}))
    assert isinstance(action, PlannerAction)
    assert action.next_node == "search" and action.args == {"text": "penguins"}
    assert len(client.calls) == 1 and '"k": 1' in client.text(0)
    assert probe.tool_contexts == []


# -- tool_visibility -------------------------------------------------------------------------


class OnlySearch:
    def visible_tools(self, specs: Sequence[Any], tool_context: Mapping[str, Any]) -> list[Any]:
        return [spec for spec in specs if spec.name == "search"]


async def test_tool_visibility_narrows_the_tools_of_one_call() -> None:
    planner, client, _ = make([answer("x"), answer("y")])
    await planner.run("q", tool_visibility=OnlySearch())
    await planner.run("q")
    assert "approve" not in client.calls[0][0]["content"]
    assert "approve" in client.calls[1][0]["content"]


# -- steering ------------------------------------------------------------------------------


@dataclass
class Event:
    """Shaped like PenguiFlow's `SteeringEvent` (what the planner reads of one)."""

    event_type: str
    payload: dict[str, Any]
    event_id: str = "ev-1"
    source: str = "user"

    def to_injection(self) -> str:
        return json.dumps({"steering": {"event_type": self.event_type, "payload": self.payload}})


class Inbox:
    """A fake with PenguiFlow's `SteeringInbox` surface."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.cancel_reason: str | None = None
        self.cancel_event = asyncio.Event()
        self.running = asyncio.Event()
        self.running.set()
        self.paused_waits = 0

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def push(self, event: Event) -> None:
        self.events.append(event)

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self.cancel_event.set()

    def has_event(self) -> bool:
        return bool(self.events)

    def drain(self) -> list[Event]:
        drained, self.events = self.events, []
        return drained

    async def wait_if_paused(self) -> None:
        if not self.running.is_set():
            self.paused_waits += 1
        await self.running.wait()


async def test_a_cancelled_inbox_stops_the_run_before_the_model() -> None:
    inbox = Inbox()
    inbox.cancel("user stop")
    planner, client, _ = make([answer("x")])
    with pytest.raises(SteeringCancelled, match="user stop"):
        await planner.run("q", steering=inbox)
    assert client.calls == []


async def test_a_cancel_event_stops_the_run_with_its_reason() -> None:
    inbox = Inbox()
    inbox.push(Event("CANCEL", {"reason": "changed my mind"}))
    steered: list[Any] = []
    planner, client, _ = make([answer("x")], event_callback=steered.append)
    with pytest.raises(SteeringCancelled, match="changed my mind") as raised:
        await planner.run("q", steering=inbox)
    assert raised.value.reason == "changed my mind"
    assert client.calls == []
    received = [e.extra for e in steered if e.event_type == "steering_received"]
    assert received == [{"event_id": "ev-1", "event_type": "CANCEL", "source": "user"}]


def test_steering_cancelled_is_a_runtime_error_as_in_penguiflow() -> None:
    assert issubclass(SteeringCancelled, RuntimeError)
    assert issubclass(SteeringCancelled, PenguiFlowError)


async def test_redirect_rewrites_the_query_and_is_shown_once() -> None:
    inbox = Inbox()
    inbox.push(Event("REDIRECT", {"instruction": "  find emperor penguins  "}))
    planner, client, _ = make([act("search", text="x"), answer("ok")])
    result = await planner.run("find penguins", steering=inbox)
    assert isinstance(result, PlannerFinish)
    first = client.text(0)
    assert "find emperor penguins" in first and "REDIRECT" in first
    assert 'find penguins"' not in first
    assert "REDIRECT" not in client.text(1)  # steering inputs are shown once
    history = result.metadata["trajectory_metadata"]["steering_history"]
    assert [h["event_type"] for h in history] == ["REDIRECT"]
    assert history[0]["trajectory_step"] == 0


async def test_inject_context_and_user_message_reach_the_next_model_call() -> None:
    inbox = Inbox()

    def push_during_the_first_call(messages: list[dict[str, str]]) -> str:
        inbox.push(Event("INJECT_CONTEXT", {"note": "prefer metric"}, event_id="e1"))
        inbox.push(Event("USER_MESSAGE", {"text": "also check Oslo"}, event_id="e2"))
        return act("search", text="x")

    planner, client, _ = make([push_during_the_first_call, answer("ok")])
    result = await planner.run("q", steering=inbox)
    assert isinstance(result, PlannerFinish)
    assert "prefer metric" not in client.text(0)
    second = client.text(1)
    assert "prefer metric" in second and "also check Oslo" in second
    history = result.metadata["trajectory_metadata"]["steering_history"]
    assert [(h["event_id"], h["trajectory_step"]) for h in history] == [("e1", 1), ("e2", 1)]


async def test_a_finish_waits_for_steering_that_arrived_while_the_model_answered() -> None:
    inbox = Inbox()

    def answer_while_steering_arrives(messages: list[dict[str, str]]) -> str:
        inbox.push(Event("INJECT_CONTEXT", {"note": "late news"}))
        return answer("first")

    planner, client, _ = make([answer_while_steering_arrives, answer("second")])
    result = await planner.run("q", steering=inbox)
    assert isinstance(result, PlannerFinish) and result.payload["raw_answer"] == "second"
    assert len(client.calls) == 2
    assert "late news" in client.text(1)
    assert "Finish deferred" in client.text(1)
    steps = result.metadata["steps"]
    assert len(steps) == 1 and steps[0]["observation"].startswith("Finish deferred")


async def test_a_paused_inbox_holds_the_run_until_it_is_resumed() -> None:
    inbox = Inbox()
    inbox.running.clear()
    planner, client, _ = make([answer("ok")])
    task = asyncio.create_task(planner.run("q", steering=inbox))
    await wait_all_tasks_blocked()
    assert client.calls == [] and inbox.paused_waits == 1
    inbox.running.set()
    assert isinstance(await task, PlannerFinish)


async def test_a_cancel_during_a_tool_cancels_the_tool() -> None:
    inbox = Inbox()
    planner, client, probe = make([act("wait", text="forever"), answer("x")])
    task = asyncio.create_task(planner.run("q", steering=inbox))
    await probe.entered.wait()
    inbox.cancel("user stop")
    with pytest.raises(SteeringCancelled, match="user stop"):
        await task
    assert probe.tool_cancelled is True
    assert len(client.calls) == 1


async def test_resume_takes_steering_too() -> None:
    inbox = Inbox()
    inbox.push(Event("INJECT_CONTEXT", {"note": "after the pause"}))
    planner, client, _ = make([act("approve", text="x"), answer("ok")])
    paused = await planner.run("q")
    assert isinstance(paused, PlannerPause)
    result = await planner.resume(paused.resume_token, "yes", steering=inbox)
    assert isinstance(result, PlannerFinish)
    assert "after the pause" in client.text(1)
