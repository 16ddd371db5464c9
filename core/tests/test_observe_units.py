"""Units of work for producers (`observe`, `publish_point`), content capture, and the
remote.call events of `RemoteNode` (issue 18)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from penguiflow.core import create
from penguiflow.node import NodePolicy
from penguiflow.observability import (
    CONTENT_LIMIT,
    Event,
    capture_content,
    clip_content,
    observe,
    publish_point,
)
from penguiflow.remote import (
    RemoteCallRequest,
    RemoteCallResult,
    RemoteNode,
    RemoteStreamEvent,
)
from penguiflow.testing import collect_events
from penguiflow.tracecontext import SpanContext, current_span, root_span, using_span
from penguiflow.types import Headers, Message


@pytest.fixture
def events() -> Iterator[list[Event]]:
    with collect_events() as seen:
        yield seen


async def test_a_unit_is_a_child_span_current_while_it_runs(events: list[Event]) -> None:
    parent = root_span("1" * 32).child()
    with using_span(parent):
        async with observe("tool", "call", attributes={"tool": "t"}) as unit:
            inside = current_span()
            unit.measurements["n"] = 2.0
        assert current_span() == parent
    [event] = events
    assert inside == event.span and event.parent_span_id == parent.span_id
    assert event.span is not None and event.span.trace_id == parent.trace_id
    assert event.attributes == {"tool": "t", "status": "ok"} and event.measurements == {"n": 2.0}
    assert event.duration_ms is not None and event.duration_ms >= 0


async def test_without_a_current_span_the_trace_ids_root_span_is_the_parent(
    events: list[Event],
) -> None:
    async with observe("planner", "run", trace_id="abc"):
        pass
    async with observe("llm", "call"):
        pass
    rooted, fresh = events
    assert rooted.parent_span_id == root_span("abc").span_id and rooted.trace_id == "abc"
    assert fresh.parent_span_id is None and fresh.span is not None  # a trace of its own


async def test_work_without_a_trace_id_joins_the_trace_it_runs_in(events: list[Event]) -> None:
    # An LLM client does not know the planner's trace id: its call must still belong to the
    # step it runs in, in the same trace (issue 20: the playground's tokens per step were 0).
    async with observe("planner", "run", trace_id="run-1"):
        async with observe("planner", "step") as step, observe("llm", "call"):
            pass
        async with observe("tool", "call", trace_id="other"), observe("llm", "call"):
            pass
    async with observe("llm", "call"):
        pass
    call, step_event, other_call, other, run, outside = events
    assert step.span is not None and call.parent_span_id == step.span.span_id
    assert call.trace_id == step_event.trace_id == run.trace_id == "run-1"
    assert (other.trace_id, other_call.trace_id) == ("other", "other")
    assert outside.trace_id is None  # the trace ended with its block


async def test_a_failure_and_a_cancellation_are_reported(events: list[Event]) -> None:
    with pytest.raises(ValueError):
        async with observe("tool", "call"):
            raise ValueError("broken tool")

    entered = asyncio.Event()

    async def forever() -> None:
        async with observe("remote", "call"):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(forever())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failed, cancelled = events
    assert failed.attributes["status"] == "error"
    assert failed.attributes["error_type"] == "ValueError"
    assert failed.attributes["error"] == "broken tool"
    assert cancelled.attributes["status"] == "cancelled"


async def test_fail_marks_an_error_without_raising(events: list[Event]) -> None:
    async with observe("tool", "call") as unit:
        unit.fail("tool 'x' raised KeyError: k", "KeyError")
    [event] = events
    assert event.attributes["status"] == "error" and event.attributes["error_type"] == "KeyError"


async def test_nothing_happens_when_nobody_listens() -> None:
    async with observe("llm", "call") as unit:
        assert unit.span is None and not unit.active and current_span() is None
    await publish_point("planner", "pause")  # no sink: returns at once


async def test_a_point_event_carries_the_span_it_happened_in(events: list[Event]) -> None:
    span = root_span("2" * 32)
    with using_span(span):
        await publish_point("planner", "pause", attributes={"reason": "await_input"})
    [event] = events
    assert event.span == span and event.duration_ms is None
    assert event.qualified_name == "planner.pause"


def test_content_capture_is_off_unless_turned_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PENGUIFLOW_CAPTURE_CONTENT", raising=False)
    assert capture_content() is False
    for on in ("1", "true", "YES", " on "):
        monkeypatch.setenv("PENGUIFLOW_CAPTURE_CONTENT", on)
        assert capture_content() is True
    monkeypatch.setenv("PENGUIFLOW_CAPTURE_CONTENT", "0")
    assert capture_content() is False


def test_clip_content_keeps_text_short() -> None:
    assert clip_content("short") == "short"
    assert clip_content({"a": [1, 2]}) == '{"a": [1, 2]}'
    long = clip_content("x" * (CONTENT_LIMIT + 10))
    assert long.startswith("x" * CONTENT_LIMIT) and long.endswith("[10 more characters]")
    assert clip_content(object()).startswith('"<object')  # default=str, as JSON


class Agent:
    """A transport that records the span each request was sent in."""

    def __init__(self, *, fail: bool = False) -> None:
        self.spans: list[SpanContext | None] = []
        self.fail = fail

    async def send(self, request: RemoteCallRequest) -> RemoteCallResult:
        self.spans.append(current_span())
        if self.fail:
            raise ConnectionError("agent down")
        return RemoteCallResult(result="ok", context_id="c-1", task_id="t-1")

    async def stream(self, request: RemoteCallRequest) -> AsyncIterator[RemoteStreamEvent]:
        yield RemoteStreamEvent(result="ok", done=True)

    async def cancel(self, *, agent_url: str, task_id: str) -> None:
        return None


async def run_remote(agent: Agent) -> Any:
    node = RemoteNode(
        transport=agent,
        skill="echo",
        agent_url="http://agent.test",
        name="remote",
        policy=NodePolicy(validate="none", max_retries=0),
    )
    flow = create(node.to(), emit_errors_to_rookery=True)
    flow.run()
    sent = Message(payload="hi", headers=Headers(tenant="acme"))
    await flow.emit(sent)
    result = await flow.fetch()
    await flow.stop()
    return sent, result


async def test_a_remote_node_call_is_a_remote_call_whose_span_the_transport_sees(
    events: list[Event],
) -> None:
    agent = Agent()
    sent, result = await run_remote(agent)
    assert result == "ok"
    [call] = [e for e in events if e.qualified_name == "remote.call"]
    assert call.attributes["side"] == "client" and call.attributes["status"] == "ok"
    assert call.attributes["skill"] == "echo" and call.attributes["remote_task_id"] == "t-1"
    assert call.tenant == "acme" and call.trace_id == sent.trace_id
    assert call.span is not None and call.span.trace_id == root_span(sent.trace_id).trace_id
    assert agent.spans == [call.span]


async def test_a_failed_remote_call_is_an_error_event(events: list[Event]) -> None:
    await run_remote(Agent(fail=True))
    [call] = [e for e in events if e.qualified_name == "remote.call"]
    assert call.attributes["status"] == "error"
    assert call.attributes["error_type"] == "ConnectionError"


async def test_the_scripted_llm_client_publishes_llm_calls(events: list[Event]) -> None:
    """Like the HTTP adapters: runs on the scripted client show LLM spans and usage."""
    from penguiflow.llm import ScriptedLLMClient

    client = ScriptedLLMClient(["a reply of some length"], model="scripted-model")
    parent = root_span("a" * 32).child()
    with using_span(parent):
        response = await client.complete(messages=[{"role": "user", "content": "hello there"}])
    assert response.text == "a reply of some length"
    (call,) = [e for e in events if e.family == "llm"]
    assert call.name == "call"
    assert call.parent_span_id == parent.span_id and call.span is not None
    assert call.duration_ms is not None
    assert call.attributes["gen_ai.request.model"] == "scripted-model"
    assert call.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert call.attributes["status"] == "ok"
    assert call.measurements["output_tokens"] == float(len(response.text) // 4)


async def test_the_scripted_llm_client_publishes_nothing_unobserved() -> None:
    from penguiflow.llm import ScriptedLLMClient
    from penguiflow.observability import enabled

    assert not enabled()
    client = ScriptedLLMClient(["ok"])
    assert (await client.complete(messages=[{"role": "user", "content": "x"}])).text == "ok"
