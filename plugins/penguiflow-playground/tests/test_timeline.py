"""`trace_gaps`: the stretches of a trace with nothing running, which the History view draws
compressed and marked (a run paused for approval, a long idle wait)."""

from __future__ import annotations

from typing import Any

import pytest
from _support import paused_trace_events
from penguiflow_playground import IDLE_MIN_MS, event_view, trace_gaps, trace_timeline

from penguiflow.observability import Event
from penguiflow.tracecontext import SpanContext

TRACE = "0af7651916cd43dd8448eb211c80319c"
START = 1_800_000_000.0


def _views(events: list[Event]) -> list[dict[str, Any]]:
    return [event_view(event, seq) for seq, event in enumerate(events, 1)]


def _node(span_id: str, at_ms: float, ms: float) -> Event:
    return Event(
        "flow",
        "node_success",
        ts=START + at_ms / 1000.0,
        duration_ms=ms,
        trace_id=TRACE,
        span=SpanContext(TRACE, span_id),
        attributes={"node_name": f"n{span_id[-1]}"},
    )


def test_a_pause_is_one_gap_from_the_pause_to_the_resume() -> None:
    views = _views(paused_trace_events(TRACE, START, pause_s=600.0))
    [gap] = trace_gaps(views)
    # the session's task and the first planner run enclose the wait: they do not hide it
    assert gap["reason"] == "paused"
    assert gap["start_ms"] == pytest.approx(48.0)  # the planner's pause event
    assert gap["end_ms"] == pytest.approx(600_050.0)  # the audit trail's resume
    assert gap["duration_ms"] == pytest.approx(gap["end_ms"] - gap["start_ms"])
    # on the timeline's clock: the resumed run starts where the gap ends
    runs = [s for s in trace_timeline(views) if s["kind"] == "planner.run"]
    assert runs[1]["start_ms"] == pytest.approx(gap["end_ms"] + 1.0)


def test_a_short_pause_is_still_marked() -> None:
    [gap] = trace_gaps(_views(paused_trace_events(TRACE, START, pause_s=0.2)))
    assert gap["reason"] == "paused" and gap["duration_ms"] == pytest.approx(200.0 + 2.0)


def test_a_long_wait_without_a_pause_is_idle() -> None:
    later = IDLE_MIN_MS + 4000.0
    events = [_node("00000000000000a1", 0.0, 10.0), _node("00000000000000a2", later, 10.0)]
    assert trace_gaps(_views(events)) == [
        {"start_ms": 10.0, "end_ms": later, "duration_ms": later - 10.0, "reason": "idle"}
    ]


def test_ordinary_gaps_between_work_are_not_gaps() -> None:
    # 20 ms between two nodes, and a long wait that is a small share of a long trace
    events = [
        _node("00000000000000a1", 0.0, 10.0),
        _node("00000000000000a2", 30.0, 10.0),
        _node("00000000000000a3", 1200.0, 10000.0),
    ]
    assert trace_gaps(_views(events)) == []
    assert trace_gaps([]) == []


def test_work_after_a_resume_is_not_paused() -> None:
    events = [
        Event("planner", "pause", ts=START, trace_id=TRACE),
        Event("planner", "resume", ts=START + 0.01, trace_id=TRACE),
        _node("00000000000000a1", 10.0, 5.0),
        _node("00000000000000a2", 40.0, 5.0),
    ]
    # paused from the pause to the resume (nothing ran); 15 ms to 40 ms is not a gap
    assert trace_gaps(_views(events)) == [
        {"start_ms": 0.0, "end_ms": 10.0, "duration_ms": 10.0, "reason": "paused"}
    ]
