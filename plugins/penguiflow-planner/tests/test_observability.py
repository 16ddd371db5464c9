"""The planner's events for `penguiflow.observability` (issue 18): planner.run, planner.step,
tool.call and planner.<kind>, their spans' parent/child links, the tool's code inside its
span, and LLM calls through the real OpenAI adapter on a loopback server as children."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from penguiflow_planner import PlannerEvent, PlannerFinish, PlannerPause, ReactPlanner
from pydantic import BaseModel
from tools import catalog as shared_catalog

from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool
from penguiflow.llm import ScriptedLLMClient
from penguiflow.observability import Event
from penguiflow.testing import collect_events
from penguiflow.tracecontext import SpanContext, current_span, root_span, using_span

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Query(BaseModel):
    text: str


class Hits(BaseModel):
    titles: list[str]


SEEN_IN_TOOL: list[SpanContext | None] = []


@tool(desc="Look something up.", side_effects="read")
async def lookup(message: Query, ctx: Any) -> Hits:
    SEEN_IN_TOOL.append(current_span())
    return Hits(titles=[f"private result about {message.text}"])


def catalog() -> list[Any]:
    registry = ModelRegistry()
    registry.register("lookup", Query, Hits)
    return build_catalog(
        [Node(lookup, name="lookup", policy=NodePolicy(validate="none"))], registry
    )


def act(node: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": "final_response", "args": {"answer": text}})


def completion(text: str) -> ScriptedResponse:
    return ScriptedResponse(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5},
        }
    )


@pytest.fixture
def events() -> Iterator[list[Event]]:
    SEEN_IN_TOOL.clear()
    with collect_events() as seen:
        yield seen


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedHTTPServer]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ScriptedHTTPServer() as running:
        yield running


def named(events: list[Event], name: str) -> list[Event]:
    return [event for event in events if event.qualified_name == name]


async def test_a_run_is_a_tree_of_spans_with_the_llm_and_tool_calls_in_it(
    events: list[Event], server: ScriptedHTTPServer
) -> None:
    from penguiflow_openai import OpenAIClient

    server.add(completion(act("lookup", text="penguins")), completion(answer("Penguins swim.")))
    llm = OpenAIClient("gpt-4o-mini", base_url=server.url, api_key="sk-test")
    planner = ReactPlanner(llm_client=llm, catalog=catalog())
    try:
        result = await planner.run("tell me about penguins", tool_context={"trace_id": TRACE})
    finally:
        await llm.aclose()
    assert isinstance(result, PlannerFinish) and result.ok

    [run] = named(events, "planner.run")
    steps = named(events, "planner.step")
    [call] = named(events, "tool.call")
    llm_calls = named(events, "llm.call")
    assert len(steps) == 2 and len(llm_calls) == 2
    assert run.span is not None and run.duration_ms is not None
    # No span around the run: it hangs under its PenguiFlow trace's root span.
    assert run.trace_id == TRACE and run.span.trace_id == TRACE
    assert run.parent_span_id == root_span(TRACE).span_id
    assert run.attributes["reason"] == "answer_complete" and run.attributes["status"] == "ok"
    assert run.attributes["query_length"] == len("tell me about penguins")
    assert run.measurements["hops"] == 1 and run.measurements["cost_usd"] > 0
    for step in steps:
        assert step.parent_span_id == run.span.span_id and step.span is not None
    first, second = steps
    # Each step names its own index, the finishing one included (it records no trajectory step).
    assert [first.attributes["step"], second.attributes["step"]] == [0, 1]
    # The tool call and the model calls are children of their steps.
    assert call.parent_span_id == first.span.span_id
    assert [c.parent_span_id for c in llm_calls] == [first.span.span_id, second.span.span_id]
    assert call.attributes["tool"] == "lookup" and call.attributes["side_effects"] == "read"
    assert call.attributes["status"] == "ok"
    # The tool's code ran inside its span.
    assert [call.span] == SEEN_IN_TOOL
    # Each model request carried its llm.call span as traceparent.
    sent = [SpanContext.parse(r.headers.get("traceparent")) for r in server.requests]
    assert sent == [c.span for c in llm_calls]
    # planner.<kind> events happened inside the spans: the finish in the last step's.
    [finish] = named(events, "planner.finish")
    assert finish.attributes["finish_reason"] == "answer_complete"
    assert finish.span == second.span and finish.duration_ms is None
    assert named(events, "planner.step_start") and named(events, "planner.tool_call_start")
    # No content by default: neither the query, the tool's result nor the answer.
    text = repr(events)
    for private in ("tell me about penguins", "private result", "Penguins swim"):
        assert private not in text


async def test_an_llm_call_in_a_step_is_in_the_runs_trace_under_the_steps_span(
    events: list[Event],
) -> None:
    # The scripted client (like every client) knows no PenguiFlow trace id: its llm.call
    # must still be filed under the run's trace, or a view of that trace (the playground's
    # tokens and cost per step) never sees it.
    llm = ScriptedLLMClient([act("lookup", text="penguins"), answer("Penguins swim.")])
    planner = ReactPlanner(llm_client=llm, catalog=catalog())
    result = await planner.run("penguins?", tool_context={"trace_id": "run-trace-1"})
    assert isinstance(result, PlannerFinish) and result.ok
    steps = named(events, "planner.step")
    llm_calls = named(events, "llm.call")
    assert len(steps) == len(llm_calls) == 2
    for step, call in zip(steps, llm_calls, strict=True):
        assert step.span is not None and call.parent_span_id == step.span.span_id
        assert call.trace_id == step.trace_id == "run-trace-1"
        assert call.measurements["input_tokens"] > 0


async def test_content_capture_puts_the_query_and_tool_io_on_events(
    events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PENGUIFLOW_CAPTURE_CONTENT", "1")
    llm = ScriptedLLMClient([act("lookup", text="krill"), answer("ok")])
    planner = ReactPlanner(llm_client=llm, catalog=catalog())
    await planner.run("what do penguins eat")
    [run] = named(events, "planner.run")
    [call] = named(events, "tool.call")
    assert run.attributes["query"] == "what do penguins eat"
    assert "krill" in call.attributes["arguments"]
    assert "private result about krill" in call.attributes["result"]
    [start] = named(events, "planner.tool_call_start")
    assert "krill" in start.attributes["args_json"]


async def test_a_failing_tool_is_an_error_tool_call_and_a_run_under_the_callers_span(
    events: list[Event],
) -> None:
    llm = ScriptedLLMClient([act("weather", city="Atlantis"), answer("no idea")])
    planner = ReactPlanner(llm_client=llm, catalog=shared_catalog())
    outer = root_span("f" * 32).child()
    with using_span(outer):
        await planner.run("weather in Atlantis?")
    [run] = named(events, "planner.run")
    [call] = named(events, "tool.call")
    assert run.parent_span_id == outer.span_id and run.span is not None
    assert run.span.trace_id == outer.trace_id
    assert call.attributes["status"] == "error" and call.attributes["error_type"] == "ValueError"
    assert "Atlantis" in call.attributes["error"]


async def test_pause_and_resume_are_two_runs_with_their_reasons(events: list[Event]) -> None:
    llm = ScriptedLLMClient([act("refund", amount=10.0), answer("refunded")])
    planner = ReactPlanner(llm_client=llm, catalog=shared_catalog())
    paused = await planner.run("refund me", tool_context={"trace_id": TRACE})
    assert isinstance(paused, PlannerPause)
    finished = await planner.resume(paused.resume_token, "approved")
    assert isinstance(finished, PlannerFinish) and finished.ok
    first, second = named(events, "planner.run")
    assert (first.attributes["outcome"], first.attributes["reason"]) == (
        "pause",
        "approval_required",
    )
    assert second.attributes["resumed"] is True and second.attributes["reason"] == "answer_complete"
    [pause] = named(events, "planner.pause")
    assert pause.attributes["reason"] == "approval_required"
    assert "pause_ref" in pause.attributes and paused.resume_token not in repr(events)
    assert "payload" not in pause.attributes  # content: off by default
    [resume] = named(events, "planner.resume")
    assert "user_input" not in resume.attributes
    [call] = named(events, "tool.call")
    assert call.attributes["paused"] is True and call.attributes["side_effects"] == "write"


async def test_budget_endings_and_the_event_callback_keep_working(events: list[Event]) -> None:
    received: list[PlannerEvent] = []
    llm = ScriptedLLMClient([act("search", text="a"), act("search", text="b")])
    from penguiflow_planner import PlannerBudgets

    planner = ReactPlanner(
        llm_client=llm,
        catalog=shared_catalog(),
        budgets=PlannerBudgets(max_iters=1),
        event_callback=received.append,
    )
    result = await planner.run("loop")
    assert isinstance(result, PlannerFinish) and result.metadata["finish_reason"] == "max_iters"
    [budget] = named(events, "planner.budget_exhausted")
    assert budget.attributes["finish_reason"] == "max_iters"
    [run] = named(events, "planner.run")
    assert run.attributes["reason"] == "max_iters" and run.attributes["status"] == "error"
    kinds = {e.event_type for e in received}
    assert {"step_start", "finish", "budget_exhausted"} <= kinds


async def test_nothing_is_published_when_nobody_listens() -> None:
    llm = ScriptedLLMClient([act("search", text="a"), answer("ok")])
    planner = ReactPlanner(llm_client=llm, catalog=shared_catalog())
    result = await planner.run("q")
    assert isinstance(result, PlannerFinish) and result.ok
    assert current_span() is None
