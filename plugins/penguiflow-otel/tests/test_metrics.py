"""Events to metrics, read back through the SDK's in-memory metric reader: the instruments,
their bounded attributes, and the cap on distinct values."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Exported
from penguiflow_otel import METRIC_NAMES

from penguiflow.observability import Event
from penguiflow.tracecontext import root_span

pytestmark = pytest.mark.anyio

TRACE = "5b8efff798038103d269b633813fc60c"


def points(exported: Exported) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """metric name -> [(attributes, point)] of what the reader collects now."""
    data = exported.metrics.get_metrics_data()
    assert data is not None
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found[metric.name] = [
                    (dict(point.attributes or {}), point) for point in metric.data.data_points
                ]
    return found


def flow(name: str, *, duration_ms: float | None = None, **extra: Any) -> Event:
    root = root_span(TRACE)
    return Event(
        "flow",
        name,
        duration_ms=duration_ms,
        trace_id=TRACE,
        span=root.child(),
        parent_span_id=root.span_id,
        tenant="acme",
        attributes={"node_name": "fetch", "attempt": 0, "extra": extra},
    )


async def test_node_latency_retries_and_failures(exported: Exported) -> None:
    for event in (
        flow("node_start"),
        flow("node_error", duration_ms=100, exception="boom"),
        flow("node_retry", sleep_s=0.1),
        flow("node_success", duration_ms=50),
        flow("node_timeout", duration_ms=1000),
        flow("node_failed", duration_ms=1000, flow_error={"code": "NODE_TIMEOUT"}),
    ):
        await exported.sink(event)
    found = points(exported)
    latency = {a["outcome"]: p for a, p in found["penguiflow.node.duration"]}
    assert set(latency) == {"ok", "error", "timeout"}
    assert latency["ok"].count == 1 and latency["ok"].sum == pytest.approx(0.05)
    assert [(a, p.value) for a, p in found["penguiflow.node.retries"]] == [({"node": "fetch"}, 1)]
    assert [(a, p.value) for a, p in found["penguiflow.node.failures"]] == [
        ({"node": "fetch", "code": "NODE_TIMEOUT"}, 1)
    ]


async def test_llm_tokens_cost_and_latency_by_model(exported: Exported) -> None:
    for model, tokens in (("gpt-4o", 100), ("gpt-4o", 50), ("claude", 10)):
        await exported.sink(
            Event(
                "llm",
                "call",
                duration_ms=200,
                trace_id=TRACE,
                attributes={
                    "gen_ai.request.model": model,
                    "gen_ai.system": "openai",
                    "status": "ok",
                },
                measurements={
                    "input_tokens": tokens,
                    "output_tokens": 5,
                    "cache_read_tokens": 1,
                    "cost_usd": 0.5,
                },
            )
        )
    found = points(exported)
    tokens = {(a["model"], a["type"]): p.value for a, p in found["penguiflow.llm.tokens"]}
    assert tokens == {
        ("gpt-4o", "input"): 150,
        ("gpt-4o", "output"): 10,
        ("gpt-4o", "cache_read"): 2,
        ("claude", "input"): 10,
        ("claude", "output"): 5,
        ("claude", "cache_read"): 1,
    }
    cost = {a["model"]: p.value for a, p in found["penguiflow.llm.cost"]}
    assert cost == {"gpt-4o": 1.0, "claude": 0.5}
    usage = {
        (a["gen_ai.request.model"], a["gen_ai.token.type"]): p.sum
        for a, p in found["gen_ai.client.token.usage"]
    }
    assert usage[("gpt-4o", "input")] == 150
    (duration_attributes, _) = found["gen_ai.client.operation.duration"][0]
    assert duration_attributes["gen_ai.provider.name"] == "openai"
    assert duration_attributes["gen_ai.operation.name"] == "chat"


async def test_tools_planner_connectors_remote_and_sessions(exported: Exported) -> None:
    events = [
        Event("tool", "call", duration_ms=3, attributes={"tool": "search", "status": "ok"}),
        Event("tool", "call", duration_ms=3, attributes={"tool": "search", "status": "error"}),
        Event("planner", "finish", attributes={"reason": "answer_complete"}),  # not counted
        Event("planner", "run", attributes={"outcome": "finish", "reason": "budget_exhausted"}),
        Event("planner", "run", attributes={"outcome": "pause", "reason": "approval_required"}),
        Event(
            "planner",
            "run",
            duration_ms=9,
            attributes={"outcome": "finish", "reason": "answer_complete", "status": "ok"},
        ),
        Event("connector", "call", attributes={"connector": "mcp", "server": "git", "tool": "log"}),
        Event("remote", "call", attributes={"url": "http://127.0.0.1:1/", "status": "error"}),
        Event("session", "task", attributes={"state": "COMPLETE", "kind": "background"}),
    ]
    for event in events:
        await exported.sink(event)
    found = points(exported)
    calls = {a["status"]: p.value for a, p in found["penguiflow.tool.calls"]}
    assert calls == {"ok": 1, "error": 1}
    finishes = {a["reason"]: p.value for a, p in found["penguiflow.planner.finishes"]}
    assert finishes == {"answer_complete": 1, "budget_exhausted": 1}
    pauses = {a["reason"]: p.value for a, p in found["penguiflow.planner.pauses"]}
    assert pauses == {"approval_required": 1}
    assert found["penguiflow.planner.run.duration"][0][0] == {
        "reason": "answer_complete",
        "status": "ok",
    }
    assert found["penguiflow.connector.calls"][0][0] == {
        "connector": "mcp",
        "server": "git",
        "tool": "log",
        "status": "ok",
    }
    assert found["penguiflow.remote.calls"][0][0] == {
        "agent": "http://127.0.0.1:1/",
        "status": "error",
    }
    assert found["penguiflow.session.tasks"][0][0] == {"state": "COMPLETE", "kind": "background"}


async def test_no_ids_or_tenants_become_metric_attributes(exported: Exported) -> None:
    await exported.sink(flow("node_success", duration_ms=1))
    for name, data in points(exported).items():
        for attributes, _ in data:
            assert set(attributes) <= set(METRIC_NAMES[name][2])
            assert TRACE not in attributes.values() and "acme" not in attributes.values()


async def test_distinct_values_are_capped_with_an_other_bucket() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from penguiflow_otel import OTelSink

    reader = InMemoryMetricReader()
    sink = OTelSink(meter_provider=MeterProvider([reader]), traces=False, max_metric_values=2)
    try:
        for tool in ("a", "b", "c", "d", "a"):
            await sink(Event("tool", "call", attributes={"tool": tool, "status": "ok"}))
        data = reader.get_metrics_data()
        assert data is not None
        (metric,) = [
            m
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "penguiflow.tool.calls"
        ]
        counts = {dict(p.attributes or {})["tool"]: p.value for p in metric.data.data_points}
        assert counts == {"a": 2, "b": 1, "other": 2}
    finally:
        await sink.aclose()
