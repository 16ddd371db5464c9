"""Events to spans: the kernel's ids and times, names, kinds, statuses, attributes, span
events; exported through a real SDK pipeline to the SDK's in-memory exporter."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Exported
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from penguiflow.observability import Event
from penguiflow.tracecontext import SpanContext, root_span

pytestmark = pytest.mark.anyio

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def unit(
    family: str,
    name: str,
    span: SpanContext,
    parent: SpanContext | None,
    *,
    ts: float = 1_700_000_000.0,
    duration_ms: float = 250.0,
    attributes: dict[str, Any] | None = None,
    measurements: dict[str, float] | None = None,
) -> Event:
    return Event(
        family,
        name,
        ts=ts,
        duration_ms=duration_ms,
        trace_id=TRACE,
        span=span,
        parent_span_id=parent.span_id if parent else None,
        tenant="acme",
        attributes=attributes or {},
        measurements=measurements or {},
    )


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_a_unit_of_work_is_a_span_with_the_kernels_ids_and_times(exported: Exported) -> None:
    root = root_span(TRACE)
    run = root.child()
    await exported.sink(
        unit(
            "planner",
            "run",
            run,
            root,
            attributes={"status": "ok", "reason": "answer_complete", "steps": 2},
            measurements={"hops": 2.0},
        )
    )
    (span,) = exported.spans.get_finished_spans()
    assert span.context is not None and span.parent is not None
    assert f"{span.context.trace_id:032x}" == TRACE
    assert f"{span.context.span_id:016x}" == run.span_id
    assert f"{span.parent.span_id:016x}" == root.span_id
    assert span.context.trace_flags.sampled
    assert span.start_time == 1_700_000_000 * 10**9
    assert span.end_time == span.start_time + 250 * 10**6
    assert span.name == "planner.run" and span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.OK
    assert dict(span.attributes or {}) == {
        "penguiflow.status": "ok",
        "penguiflow.reason": "answer_complete",
        "penguiflow.steps": 2,
        "penguiflow.hops": 2.0,
        "penguiflow.event": "planner.run",
        "penguiflow.trace_id": TRACE,
        "penguiflow.tenant": "acme",
        "gen_ai.operation.name": "invoke_agent",
    }
    assert span.resource.attributes["service.name"] == "test"
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "penguiflow"


async def test_an_llm_call_follows_the_genai_conventions(exported: Exported) -> None:
    parent = root_span(TRACE).child()
    await exported.sink(
        unit(
            "llm",
            "call",
            parent.child(),
            parent,
            attributes={
                "gen_ai.system": "openai",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.response.finish_reasons": ["stop"],
                "status": "ok",
                "retries": 0,
                "stream": False,
            },
            measurements={
                "input_tokens": 120,
                "output_tokens": 30,
                "cache_read_tokens": 100,
                "cost_usd": 0.00012,
            },
        )
    )
    (span,) = exported.spans.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini" and span.kind is SpanKind.CLIENT
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.output_tokens"] == 30
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attributes["penguiflow.cost_usd"] == 0.00012
    assert attributes["penguiflow.retries"] == 0 and attributes["penguiflow.stream"] is False


async def test_embeddings_and_failed_calls(exported: Exported) -> None:
    parent = root_span(TRACE)
    await exported.sink(
        unit(
            "llm",
            "call",
            parent.child(),
            parent,
            attributes={"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e5"},
        )
    )
    await exported.sink(
        unit(
            "tool",
            "call",
            parent.child(),
            parent,
            attributes={
                "arguments": '{"city": "Atlantis"}',
                "tool": "weather",
                "side_effects": "read",
                "status": "error",
                "error": "no weather station in Atlantis",
                "error_type": "ValueError",
            },
        )
    )
    spans = by_name(exported.spans.get_finished_spans())
    assert spans["embeddings e5"].kind is SpanKind.CLIENT
    tool = spans["execute_tool weather"]
    assert tool.kind is SpanKind.INTERNAL
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.status.description == "no weather station in Atlantis"
    attributes = dict(tool.attributes or {})
    assert attributes["error.type"] == "ValueError"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.name"] == "weather"
    assert attributes["penguiflow.side_effects"] == "read"
    # captured content (the producer only adds it with content capture on) under GenAI names
    assert attributes["gen_ai.tool.call.arguments"] == '{"city": "Atlantis"}'


async def test_connector_and_remote_calls_are_client_spans_unless_told(
    exported: Exported,
) -> None:
    parent = root_span(TRACE)
    await exported.sink(
        unit(
            "connector",
            "call",
            parent.child(),
            parent,
            attributes={"connector": "mcp", "server": "git", "tool": "git_status"},
        )
    )
    await exported.sink(
        unit("remote", "call", parent.child(), parent, attributes={"agent": "writer"})
    )
    await exported.sink(
        unit(
            "remote",
            "call",
            parent.child(),
            parent,
            attributes={"agent": "writer", "span_kind": "server"},
        )
    )
    spans = exported.spans.get_finished_spans()
    assert [(s.name, s.kind) for s in spans] == [
        ("mcp.call git_status", SpanKind.CLIENT),
        ("remote.call writer", SpanKind.CLIENT),
        ("remote.call writer", SpanKind.SERVER),
    ]
    assert "penguiflow.span_kind" not in (spans[2].attributes or {})


async def test_point_events_become_span_events_of_their_span(exported: Exported) -> None:
    root = root_span(TRACE)
    run = root.child()
    # A point event inside the run (its parent is the run), then one stamped with the run's
    # own span, then the run itself ends.
    pause = Event(
        "planner",
        "pause",
        ts=1.5,
        trace_id=TRACE,
        parent_span_id=run.span_id,
        attributes={"reason": "approval_required"},
    )
    resume = Event("planner", "resume", ts=1.7, trace_id=TRACE, span=run)
    for event in (pause, resume, unit("planner", "run", run, root, ts=1.0, duration_ms=1000)):
        await exported.sink(event)
    (span,) = exported.spans.get_finished_spans()
    assert [(e.name, e.timestamp) for e in span.events] == [
        ("planner.pause", 1_500_000_000),
        ("planner.resume", 1_700_000_000),
    ]
    assert dict(span.events[0].attributes or {}) == {"penguiflow.reason": "approval_required"}
    # Too late: the span is exported and cannot change; events of no span go nowhere.
    await exported.sink(Event("planner", "finish", trace_id=TRACE, parent_span_id=run.span_id))
    await exported.sink(Event("planner", "finish", trace_id=TRACE))
    assert exported.sink.dropped_events == 1
    assert len(exported.spans.get_finished_spans()) == 1


def flow_event(
    name: str,
    span: SpanContext,
    parent: SpanContext,
    *,
    ts: float,
    duration_ms: float | None = None,
    attempt: int = 0,
    extra: dict[str, Any] | None = None,
) -> Event:
    return Event(
        "flow",
        name,
        ts=ts,
        duration_ms=duration_ms,
        trace_id=TRACE,
        span=span,
        parent_span_id=parent.span_id,
        attributes={
            "node_name": "fetch",
            "node_id": "n1",
            "attempt": attempt,
            "extra": extra or {},
        },
        measurements={"queue_depth_in": 0.0, "queue_depth_out": 1.0},
    )


async def test_each_node_attempt_is_a_span_and_late_events_are_counted(
    exported: Exported,
) -> None:
    # As the kernel publishes a retried node: one span per attempt, siblings under the
    # message's span; node_retry and node_failed name the attempt that already ended.
    root = root_span(TRACE)
    first, second = root.child(), root.child()
    events = [
        flow_event("node_start", first, root, ts=10.0),
        flow_event(
            "node_error",
            first,
            root,
            ts=10.0,
            duration_ms=100,
            extra={"exception": "ConnectionError('reset')"},
        ),
        flow_event("node_retry", first, root, ts=10.1, attempt=1, extra={"sleep_s": 0.2}),
        flow_event("node_start", second, root, ts=10.3, attempt=1),
        flow_event("node_success", second, root, ts=10.3, duration_ms=50, attempt=1),
    ]
    for event in events:
        await exported.sink(event)
    failed, succeeded = exported.spans.get_finished_spans()
    assert failed.name == succeeded.name == "node fetch"
    assert f"{failed.context.span_id:016x}" == first.span_id  # type: ignore[union-attr]
    assert f"{succeeded.parent.span_id:016x}" == root.span_id  # type: ignore[union-attr]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ConnectionError('reset')"
    assert succeeded.status.status_code is StatusCode.OK
    assert failed.events == succeeded.events == ()  # node_start adds nothing to the span
    assert succeeded.start_time == 10_300_000_000 and succeeded.end_time == 10_350_000_000
    attributes = dict(succeeded.attributes or {})
    assert attributes["penguiflow.node_name"] == "fetch" and attributes["penguiflow.attempt"] == 1
    assert attributes["penguiflow.queue_depth_out"] == 1.0
    assert exported.sink.dropped_events == 1  # node_retry, after its attempt's span


async def test_a_point_event_before_its_span_moves_the_start_back(exported: Exported) -> None:
    root = root_span(TRACE)
    span = root.child()
    await exported.sink(Event("planner", "step_start", ts=4.0, span=span))
    await exported.sink(unit("planner", "step", span, root, ts=5.0, duration_ms=10))
    (exported_span,) = exported.spans.get_finished_spans()
    assert exported_span.start_time == 4 * 10**9 and exported_span.end_time == 5_010_000_000


async def test_unsampled_spans_are_not_exported(exported: Exported) -> None:
    root = SpanContext(TRACE, "00f067aa0ba902b7", sampled=False)
    await exported.sink(unit("planner", "step", root.child(), root))
    assert exported.spans.get_finished_spans() == ()


async def test_pending_point_events_are_bounded(exported: Exported) -> None:
    converter = exported.sink._converter
    assert converter is not None
    converter.max_pending, converter.max_events = 2, 2
    root = root_span(TRACE)
    spans = [root.child() for _ in range(3)]
    for span in spans:
        for _ in range(3):
            await exported.sink(Event("planner", "repair", span=span))
    # the third event of each span is refused, and the first span's two are evicted
    assert exported.sink.dropped_events == 3 + 2
    await exported.sink(unit("planner", "step", spans[2], root))
    (span,) = exported.spans.get_finished_spans()
    assert len(span.events) == 2


async def test_a_closed_sink_ignores_events(exported: Exported) -> None:
    exported.sink.shutdown()
    exported.sink.shutdown()  # idempotent
    root = root_span(TRACE)
    await exported.sink(unit("planner", "step", root.child(), root))
    assert exported.spans.get_finished_spans() == ()
    await exported.sink.aclose()
