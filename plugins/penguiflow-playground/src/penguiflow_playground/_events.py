"""The observability envelope as the page receives it, and what a trace's events become:
a timeline of spans and a list of planner steps.

One conversion, used by the live stream and by the history, so a trace looks the same while
it runs and when it is replayed from the state store."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import to_jsonable_python

from penguiflow.observability import Event

__all__ = ["event_view", "trace_steps", "trace_timeline"]


def _jsonable(value: Any) -> Any:
    # Attributes are meant to be small JSON values; anything else travels as its text rather
    # than breaking the stream.
    return to_jsonable_python(value, fallback=lambda v: f"<{type(v).__name__}>")


def event_view(event: Event, seq: int) -> dict[str, Any]:
    """`event` as one JSON object: the envelope's fields, its span as ids, `seq` (the
    hub's counter, for ordering and resuming) and `emitted_at`, when the hub received it
    (the page compares it with the time it drew the event: the live view's latency)."""
    span = event.span
    return {
        "seq": seq,
        "family": event.family,
        "name": event.name,
        "ts": event.ts,
        "duration_ms": event.duration_ms,
        "trace_id": event.trace_id,
        "span_id": span.span_id if span is not None else None,
        "parent_span_id": event.parent_span_id,
        "tenant": event.tenant,
        "attributes": _jsonable(dict(event.attributes)),
        "measurements": dict(event.measurements),
        "emitted_at": time.time(),
    }


def trace_timeline(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The units of work of a trace (events with a duration: node invocations, planner runs
    and steps, tool and LLM calls), oldest first, each with its offset from the trace's
    first event."""
    views = list(events)
    if not views:
        return []
    origin = min(float(v.get("ts") or 0.0) for v in views)
    spans = []
    for view in views:
        duration = view.get("duration_ms")
        if duration is None:
            continue
        attributes = view.get("attributes") or {}
        label = attributes.get("node_name") or attributes.get("tool") or view.get("name")
        spans.append(
            {
                "kind": f"{view.get('family')}.{view.get('name')}",
                "label": str(label),
                "start_ms": round((float(view.get("ts") or 0.0) - origin) * 1000.0, 3),
                "duration_ms": float(duration),
                "span_id": view.get("span_id"),
                "parent_span_id": view.get("parent_span_id"),
                "error": attributes.get("error"),
            }
        )
    spans.sort(key=lambda s: (s["start_ms"], s["kind"]))
    return spans


#: planner moment names and the step field each fills
_STEP_FIELDS = {
    "tool_call_start": "args",
    "tool_call_result": "observation",
}


def trace_steps(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The planner's steps in a trace: per step its thought, tool, arguments, observation,
    errors, latency, the tokens and cost of the LLM calls made inside it (matched through
    the step's span), and its tool `calls` (each with its role: `call`, a parallel plan's
    `branch`, or the plan's `join`). Empty for a trace that ran no planner."""
    views = list(events)
    steps: dict[int, dict[str, Any]] = {}
    step_of_span: dict[str, int] = {}

    def step(number: int) -> dict[str, Any]:
        return steps.setdefault(
            number,
            {
                "step": number,
                "thought": None,
                "tool": None,
                "args": None,
                "observation": None,
                "errors": [],
                "latency_ms": None,
                "tokens": 0.0,
                "cost_usd": 0.0,
                "calls": [],
            },
        )

    def call(entry: dict[str, Any], call_id: str) -> dict[str, Any]:
        calls: list[dict[str, Any]] = entry["calls"]
        for known in calls:
            if known["call_id"] == call_id:
                return known
        made: dict[str, Any] = {
            "call_id": call_id,
            "tool": None,
            "role": _call_role(call_id),
            "args": None,
            "observation": None,
        }
        entry["calls"].append(made)
        return made

    for view in views:
        if view.get("family") != "planner":
            continue
        attributes = view.get("attributes") or {}
        raw = attributes.get("step")
        if not isinstance(raw, int):
            continue
        entry = step(raw)
        if view.get("span_id") and view.get("name") != "run":
            step_of_span.setdefault(str(view["span_id"]), raw)
        if attributes.get("thought"):
            entry["thought"] = attributes["thought"]
        if attributes.get("tool") and entry["tool"] is None:
            entry["tool"] = attributes["tool"]
        if attributes.get("tool_name"):
            entry["tool"] = attributes["tool_name"]
        target = _STEP_FIELDS.get(str(view.get("name")))
        if target == "args" and attributes.get("args_json") is not None:
            entry["args"] = attributes["args_json"]
        if target == "observation" and attributes.get("result_json") is not None:
            entry["observation"] = attributes["result_json"]
        call_id = attributes.get("tool_call_id")
        if target is not None and isinstance(call_id, str):
            made = call(entry, call_id)
            made["tool"] = attributes.get("tool_name") or made["tool"]
            field = "args" if target == "args" else "observation"
            made[field] = attributes.get("args_json" if target == "args" else "result_json")
        if attributes.get("error"):
            entry["errors"].append(str(attributes["error"]))
        latency = (view.get("measurements") or {}).get("latency_ms")
        if view.get("name") == "step_complete" and latency is not None:
            entry["latency_ms"] = latency
    for view in views:
        if view.get("family") != "llm":
            continue
        number = step_of_span.get(str(view.get("parent_span_id")))
        if number is None:
            continue
        measurements = view.get("measurements") or {}
        entry = step(number)
        entry["tokens"] += float(measurements.get("input_tokens", 0.0)) + float(
            measurements.get("output_tokens", 0.0)
        )
        entry["cost_usd"] += float(measurements.get("cost_usd", 0.0))
    return [steps[n] for n in sorted(steps)]


def _call_role(call_id: str) -> str:
    # The planner names a parallel plan's calls `call_<seq>_parallel_<i>` and its join
    # `call_<seq>_join` (penguiflow-planner's _acting): a branch, the join, or a single call.
    if "_parallel_" in call_id:
        return "branch"
    if call_id.endswith("_join"):
        return "join"
    return "call"
