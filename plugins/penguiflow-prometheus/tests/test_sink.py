"""The sink turns each kind of event into the metrics it stands for (events published by
hand, with the names and attributes of the observability design)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import sample
from penguiflow_prometheus import OTHER, PrometheusSink

from penguiflow.observability import Event, add_event_sink, publish
from penguiflow.testing import run_async
from penguiflow.tracecontext import root_span


def handle(sink: PrometheusSink, *events: Event) -> None:
    for event in events:
        sink.handle(event)


def flow_event(name: str, node: str = "fetch", **fields: Any) -> Event:
    extra = fields.pop("extra", {})
    return Event(
        "flow",
        name,
        attributes={"node_name": node, "node_id": "n1", "attempt": 0, "extra": extra},
        **fields,
    )


def test_node_latency_errors_retries_timeouts_and_queue_depth(registry: Any) -> None:
    sink = PrometheusSink(registry)
    handle(
        sink,
        flow_event("node_success", duration_ms=20.0, measurements={"queue_depth_in": 3.0}),
        flow_event("node_error", duration_ms=2000.0),
        flow_event("node_timeout", duration_ms=5000.0),
        flow_event("node_retry"),
        flow_event("node_retry"),
        flow_event(
            "node_failed", extra={"flow_error": {"code": "NODE_TIMEOUT", "message": "slow"}}
        ),
        flow_event("node_failed", node="other"),
    )
    assert sample(registry, "penguiflow_node_duration_seconds_count", node="fetch") == 3
    assert sample(registry, "penguiflow_node_duration_seconds_sum", node="fetch") == 7.02
    assert (
        sample(registry, "penguiflow_node_duration_seconds_bucket", node="fetch", le="0.025") == 1
    )
    assert sample(registry, "penguiflow_node_retries_total", node="fetch") == 2
    assert sample(registry, "penguiflow_node_timeouts_total", node="fetch") == 1
    assert sample(registry, "penguiflow_node_errors_total", node="fetch", code="NODE_TIMEOUT") == 1
    # A failure that names no code is a node exception (FlowErrorCode's default).
    assert (
        sample(registry, "penguiflow_node_errors_total", node="other", code="NODE_EXCEPTION") == 1
    )
    assert sample(registry, "penguiflow_node_queue_depth", node="fetch") == 3


def test_circuit_breaker_state_follows_its_events(registry: Any) -> None:
    sink = PrometheusSink(registry)
    sink.handle(flow_event("circuit_open", extra={"circuit_state": "open"}))
    assert sample(registry, "penguiflow_node_circuit_state", node="fetch") == 2
    sink.handle(flow_event("circuit_half_open", extra={"circuit_state": "half_open"}))
    assert sample(registry, "penguiflow_node_circuit_state", node="fetch") == 1
    sink.handle(flow_event("circuit_closed", extra={}))  # no state given: the name says it
    assert sample(registry, "penguiflow_node_circuit_state", node="fetch") == 0
    sink.handle(flow_event("circuit_rejected", extra={}))
    assert sample(registry, "penguiflow_node_circuit_state", node="fetch") == 2


def test_redis_streams_and_dead_letters(registry: Any) -> None:
    sink = PrometheusSink(registry)
    labels = {"runtime": "redis", "flow": "penguiflow:orders", "stream": "charge"}
    handle(
        sink,
        Event(
            "flow",
            "stream_stats",
            attributes=labels,
            measurements={"length": 7.0, "pending": 2.0, "oldest_pending_age_s": 42.5},
        ),
        Event("flow", "dead_letters", attributes=labels, measurements={"count": 4.0}),
        Event("flow", "dead_letter", attributes={**labels, "reason": "deaths"}),
    )
    flow = {"flow": "penguiflow:orders", "stream": "charge"}
    assert sample(registry, "penguiflow_redis_stream_length", **flow) == 7
    assert sample(registry, "penguiflow_redis_pending_entries", **flow) == 2
    assert sample(registry, "penguiflow_redis_oldest_pending_age_seconds", **flow) == 42.5
    assert sample(registry, "penguiflow_redis_dead_letters", flow="penguiflow:orders") == 4
    assert sample(registry, "penguiflow_redis_dead_lettered_total", reason="deaths", **flow) == 1


def test_planner_runs_finishes_pauses_and_resume_latency(registry: Any) -> None:
    sink = PrometheusSink(registry)
    handle(
        sink,
        Event("planner", "step"),
        Event("planner", "step"),
        Event("planner", "finish", attributes={"reason": "answer_complete"}),
        Event("planner", "finish", attributes={"reason": "no_path"}),
        Event("planner", "run", duration_ms=3000.0, measurements={"hops": 4.0}),
        Event("planner", "run", duration_ms=1000.0, attributes={"hops": 0}),
        Event("planner", "pause", ts=100.0, trace_id="t1", attributes={"reason": "approval"}),
        # Resumed in this process: the latency is the time since the pause it saw.
        Event("planner", "resume", ts=160.0, trace_id="t1"),
        # Paused elsewhere: the resume says how long it waited.
        Event("planner", "resume", ts=500.0, trace_id="t2", measurements={"paused_ms": 2000.0}),
        # Paused elsewhere and nothing said: counted, no latency.
        Event("planner", "resume", ts=600.0, trace_id="t3"),
    )
    assert sample(registry, "penguiflow_planner_steps_total") == 2
    assert sample(registry, "penguiflow_planner_finishes_total", reason="answer_complete") == 1
    assert sample(registry, "penguiflow_planner_finishes_total", reason="no_path") == 1
    assert sample(registry, "penguiflow_planner_run_duration_seconds_sum") == 4
    assert sample(registry, "penguiflow_planner_hops_sum") == 4
    assert sample(registry, "penguiflow_planner_hops_count") == 2
    assert sample(registry, "penguiflow_planner_pauses_total", reason="approval") == 1
    assert sample(registry, "penguiflow_planner_resumes_total") == 3
    assert sample(registry, "penguiflow_planner_resume_latency_seconds_count") == 2
    assert sample(registry, "penguiflow_planner_resume_latency_seconds_sum") == 62


def test_pause_and_resume_pair_by_pause_ref_before_trace(registry: Any) -> None:
    sink = PrometheusSink(registry)
    handle(
        sink,
        Event("planner", "pause", ts=10.0, trace_id="t", attributes={"pause_ref": "a"}),
        Event("planner", "pause", ts=20.0, trace_id="t", attributes={"pause_ref": "b"}),
        Event("planner", "resume", ts=25.0, trace_id="t", attributes={"pause_ref": "a"}),
    )
    assert sample(registry, "penguiflow_planner_resume_latency_seconds_sum") == 15
    assert sample(registry, "penguiflow_planner_pauses_total", reason="unknown") == 2


def test_tool_calls_errors_and_latency(registry: Any) -> None:
    sink = PrometheusSink(registry)
    handle(
        sink,
        Event("tool", "call", duration_ms=10.0, attributes={"tool": "search", "status": "ok"}),
        Event(
            "tool",
            "call",
            duration_ms=30.0,
            attributes={"tool": "search", "status": "error", "error": "boom"},
        ),
        # No status: an `error` attribute alone marks the failure.
        Event("tool", "call", attributes={"tool": "mail", "error": "refused"}),
    )
    assert sample(registry, "penguiflow_tool_calls_total", tool="search") == 2
    assert sample(registry, "penguiflow_tool_errors_total", tool="search") == 1
    assert sample(registry, "penguiflow_tool_errors_total", tool="mail") == 1
    assert sample(registry, "penguiflow_tool_duration_seconds_count", tool="search") == 2
    assert sample(registry, "penguiflow_tool_duration_seconds_count", tool="mail") is None


def llm_call(model: str = "gpt-4o-mini", **fields: Any) -> Event:
    attributes = {
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.response.model": f"{model}-2024-07-18",
        "gen_ai.response.finish_reasons": ["stop"],
        "status": "ok",
        **fields.pop("attributes", {}),
    }
    return Event("llm", "call", attributes=attributes, **fields)


def test_llm_tokens_cost_latency_retries_and_finish_reasons(registry: Any) -> None:
    sink = PrometheusSink(registry)
    measurements = {
        "input_tokens": 100.0,
        "output_tokens": 20.0,
        "cache_read_tokens": 64.0,
        "cost_usd": 0.002,
    }
    handle(
        sink,
        llm_call(duration_ms=800.0, measurements=measurements, attributes={"retries": 2}),
        llm_call(
            duration_ms=400.0,
            measurements=measurements,
            attributes={"gen_ai.response.finish_reasons": ("length",)},
        ),
        llm_call(attributes={"status": "error", "error": "429"}, measurements={"retries": 3.0}),
    )
    model = {"model": "gpt-4o-mini"}  # the model asked for, not the dated one answering
    assert sample(registry, "penguiflow_llm_input_tokens_total", **model) == 200
    assert sample(registry, "penguiflow_llm_output_tokens_total", **model) == 40
    assert sample(registry, "penguiflow_llm_cache_read_tokens_total", **model) == 128
    assert sample(registry, "penguiflow_llm_cost_usd_total", **model) == pytest.approx(0.004)
    assert sample(registry, "penguiflow_llm_request_duration_seconds_count", **model) == 2
    assert sample(registry, "penguiflow_llm_retries_total", **model) == 5
    assert sample(registry, "penguiflow_llm_errors_total", **model) == 1
    assert sample(registry, "penguiflow_llm_finishes_total", reason="stop", **model) == 2
    assert sample(registry, "penguiflow_llm_finishes_total", reason="length", **model) == 1
    # Tenants are not a label unless asked for.
    assert sample(registry, "penguiflow_tenant_llm_cost_usd_total", tenant="acme") is None


def test_cost_by_tenant_only_when_asked(registry: Any) -> None:
    sink = PrometheusSink(registry, tenant_label=True)
    sink.handle(llm_call(tenant="acme", measurements={"cost_usd": 1.5}))
    sink.handle(llm_call(measurements={"cost_usd": 0.5}))
    assert sample(registry, "penguiflow_tenant_llm_cost_usd_total", tenant="acme") == 1.5
    assert sample(registry, "penguiflow_tenant_llm_cost_usd_total", tenant="unknown") == 0.5


def test_session_task_states_count_live_tasks(registry: Any) -> None:
    sink = PrometheusSink(registry)

    def task(task_id: str, state: str) -> Event:
        return Event("session", "task", attributes={"task_id": task_id, "state": state})

    handle(sink, task("1", "PENDING"), task("2", "PENDING"), task("1", "RUNNING"))
    assert sample(registry, "penguiflow_session_tasks", state="pending") == 1
    assert sample(registry, "penguiflow_session_tasks", state="running") == 1
    handle(sink, task("1", "RUNNING"), task("1", "COMPLETE"), task("2", "CANCELLED"))
    assert sample(registry, "penguiflow_session_tasks", state="running") == 0
    assert sample(registry, "penguiflow_session_tasks", state="pending") == 0
    assert sample(registry, "penguiflow_session_tasks", state="complete") is None
    assert sample(registry, "penguiflow_session_task_transitions_total", state="running") == 2
    assert sample(registry, "penguiflow_session_task_transitions_total", state="complete") == 1
    assert sample(registry, "penguiflow_session_task_transitions_total", state="cancelled") == 1


def test_label_values_past_the_cap_go_to_other(registry: Any) -> None:
    sink = PrometheusSink(registry, max_label_values=2)
    for tool in ("a", "b", "c", "d", "a"):
        sink.handle(Event("tool", "call", attributes={"tool": tool, "status": "ok"}))
    assert sample(registry, "penguiflow_tool_calls_total", tool="a") == 2
    assert sample(registry, "penguiflow_tool_calls_total", tool="b") == 1
    assert sample(registry, "penguiflow_tool_calls_total", tool=OTHER) == 2
    assert sample(registry, "penguiflow_tool_calls_total", tool="c") is None
    overflow = "penguiflow_prometheus_label_overflow_total"
    assert sample(registry, overflow, metric="penguiflow_tool_calls_total") == 2
    # Each metric has its own cap: another metric still admits its own first values.
    sink.handle(Event("tool", "call", attributes={"tool": "c", "status": "error"}))
    assert sample(registry, "penguiflow_tool_errors_total", tool="c") == 1


def test_trace_span_and_session_ids_never_become_labels(registry: Any) -> None:
    from prometheus_client import generate_latest

    sink = PrometheusSink(registry)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    span = root_span(trace_id).child()
    common: dict[str, Any] = {
        "trace_id": trace_id,
        "span": span,
        "parent_span_id": "00f067aa0ba902b7",
    }
    handle(
        sink,
        flow_event("node_success", duration_ms=1.0, **common),
        llm_call(measurements={"input_tokens": 1.0}, tenant="acme", **common),
        Event(
            "session",
            "task",
            attributes={"task_id": "task-9", "session_id": "sess-7", "state": "RUNNING"},
            **common,
        ),
        Event(
            "planner", "pause", attributes={"reason": "approval", "pause_ref": "ref-1"}, **common
        ),
    )
    text = generate_latest(registry).decode()
    for secret in (trace_id, span.span_id, "00f067aa0ba902b7", "sess-7", "task-9", "ref-1", "acme"):
        assert secret not in text


def test_sinks_of_one_registry_share_its_metrics(registry: Any) -> None:
    # A registry refuses a name twice: a second sink (the hook after reset_hooks) reuses them.
    first = PrometheusSink(registry)
    second = PrometheusSink(registry)
    assert first.metrics is second.metrics
    second.handle(Event("planner", "step"))
    assert sample(registry, "penguiflow_planner_steps_total") == 1


def test_published_events_reach_the_sink(registry: Any) -> None:
    sink = PrometheusSink(registry)

    async def scenario() -> None:
        remove = add_event_sink(sink)
        try:
            await publish(Event("tool", "call", attributes={"tool": "t", "status": "ok"}))
        finally:
            remove()
        await publish(Event("tool", "call", attributes={"tool": "t", "status": "ok"}))

    run_async(scenario)
    assert sample(registry, "penguiflow_tool_calls_total", tool="t") == 1


def test_unknown_and_odd_events_are_ignored(registry: Any) -> None:
    sink = PrometheusSink(registry)
    handle(
        sink,
        Event("audit", "approval"),
        Event("remote", "call"),
        Event("planner", "finish"),  # no reason
        Event("session", "task", attributes={}),  # no state
        Event("llm", "call", measurements={"input_tokens": -5.0}),  # a negative count
        Event("flow", "node_start", attributes={"node_name": None}),
    )
    assert sample(registry, "penguiflow_planner_finishes_total", reason="unknown") == 1
    assert sample(registry, "penguiflow_llm_input_tokens_total", model="unknown") is None
