"""The stretches of a trace in which nothing ran: a run paused for a person's decision, or a
long idle wait. The History view draws each as a marked band, compressed, so that the work
on either side of a ten-minute approval stays readable on one screen.

Work is what the leaves of the span tree cover (an LLM call, a tool call, a node
invocation, a step that called nothing) and the moment of every other event; the spans
that enclose others (the session's task, a planner run) cover their children's gaps too,
so they do not count."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["IDLE_MIN_MS", "IDLE_MIN_SHARE", "trace_gaps"]

#: an unexplained gap (no pause before it) is shown as idle from this long...
IDLE_MIN_MS = 1000.0
#: ...and when it is at least this share of the whole trace
IDLE_MIN_SHARE = 0.25

# The last word of the event names that start and end a wait for a person: the planner's
# `pause` / `resume` and the audit trail's `planner.pause` / `planner.resume`.
_PAUSE = "pause"
_RESUME = "resume"


def _offset_ms(view: Mapping[str, Any], origin: float) -> float:
    return (float(view.get("ts") or 0.0) - origin) * 1000.0


def trace_gaps(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The gaps of a trace's events (the `event_view` JSON objects), oldest first, each
    `{"start_ms", "end_ms", "duration_ms", "reason"}` with offsets from the trace's first
    event (as `trace_timeline` gives them). `reason` is `"paused"` from a pause event to the
    resume that ends it, while nothing runs (any length); `"idle"` for another stretch with
    nothing running of at least `IDLE_MIN_MS` and `IDLE_MIN_SHARE` of the trace."""
    views = list(events)
    if not views:
        return []
    origin = min(float(v.get("ts") or 0.0) for v in views)
    parents = {v.get("parent_span_id") for v in views if v.get("duration_ms") is not None}
    busy: list[tuple[float, float]] = []
    # (offset, True for a pause / False for a resume): they mark the wait, they are not work
    markers: list[tuple[float, bool]] = []
    end = 0.0
    for view in views:
        start = _offset_ms(view, origin)
        duration = view.get("duration_ms")
        stop = start + float(duration) if duration is not None else start
        end = max(end, stop)
        last_word = str(view.get("name") or "").rsplit(".", 1)[-1]
        if duration is None and last_word in (_PAUSE, _RESUME):
            markers.append((start, last_word == _PAUSE))
            continue
        span_id = view.get("span_id")
        if duration is None or span_id is None or span_id not in parents:
            busy.append((start, stop))
    if not busy:
        return []
    busy.sort()
    markers.sort()
    gaps: list[dict[str, Any]] = []
    # from the trace's first event, whatever it is (a pause may come before any work)
    covered_to = 0.0
    for start, stop in busy:
        if start > covered_to:
            for low, high, reason in _split(covered_to, start, markers, end):
                gaps.append(
                    {
                        "start_ms": round(low, 3),
                        "end_ms": round(high, 3),
                        "duration_ms": round(high - low, 3),
                        "reason": reason,
                    }
                )
        covered_to = max(covered_to, stop)
    return gaps


def _split(
    low: float, high: float, markers: list[tuple[float, bool]], whole: float
) -> list[tuple[float, float, str]]:
    """The parts of the stretch (low, high), in which nothing ran, that were paused; the
    whole stretch as idle when it is long and never paused; else nothing."""
    paused_since: float | None = None
    parts: list[tuple[float, float, str]] = []
    for at, is_pause in markers:
        if at <= low:
            # the state the stretch starts in: paused when the last marker before it is a pause
            paused_since = low if is_pause else None
            continue
        if at >= high:
            break
        if is_pause and paused_since is None:
            paused_since = at
        elif not is_pause and paused_since is not None:
            parts.append((paused_since, at, "paused"))
            paused_since = None
    if paused_since is not None:
        parts.append((paused_since, high, "paused"))
    parts = [part for part in parts if part[1] > part[0]]
    length = high - low
    if not parts and length >= IDLE_MIN_MS and length >= IDLE_MIN_SHARE * whole:
        parts.append((low, high, "idle"))
    return parts
