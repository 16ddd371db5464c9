"""The planner as `penguiflow.observability` sees it (issue 18).

A run is one `planner.run` unit of work, each step a `planner.step` under it, each tool call
a `tool.call` under its step; the tool's code runs inside its span, so the LLM and MCP calls
it makes are children of it. Every `PlannerEvent` is also published as `planner.<kind>` (a
moment, carrying the span it happened in), with its scalar details as attributes.

Content stays off events unless content capture is on (`PENGUIFLOW_CAPTURE_CONTENT`): the
query, thoughts, answers, tool arguments and results, pause payloads and user input are
dropped, or clipped when it is on. The stream-chunk kinds are not converted: they are
nothing but content, and as many as the model's tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from penguiflow.observability import (
    Observation,
    capture_content,
    clip_content,
    enabled,
    publish_point,
)

if TYPE_CHECKING:
    from ._budgets import BudgetUsage
    from ._events import PlannerEvent

__all__ = ["CONTENT_KEYS", "SKIPPED_KINDS", "event_attributes", "publish_planner_event"]

#: PlannerEvent kinds never converted (pure content, one per streamed piece)
SKIPPED_KINDS = frozenset({"llm_stream_chunk", "stream_chunk", "artifact_chunk"})

#: `extra` keys that hold content: kept (clipped) only with content capture on
CONTENT_KEYS = frozenset(
    {
        "answer",
        "args",
        "args_json",
        "chunk",
        "guidance",
        "last_reply",
        "observation",
        "payload",
        "query",
        "result",
        "result_json",
        "text",
        "thought",
        "user_input",
        "warning",
    }
)

#: the longest text attribute that is not content (an error message, a reason)
_TEXT_LIMIT = 512


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def event_attributes(event: PlannerEvent, *, content: bool) -> dict[str, Any]:
    """The attributes of `planner.<kind>` for `event`: its step, tool (`node_name`), error
    and scalar `extra` values (one level of a mapping flattened as `key.sub`); content keys
    only when `content` is true."""
    attributes: dict[str, Any] = {"step": event.trajectory_step}
    if event.node_name is not None:
        attributes["tool"] = event.node_name
    if event.error is not None:
        attributes["error"] = event.error[:_TEXT_LIMIT]
    if content and event.thought:
        attributes["thought"] = clip_content(event.thought)
    for key, value in event.extra.items():
        if key in CONTENT_KEYS:
            if content and value is not None:
                attributes[key] = clip_content(value)
            continue
        if isinstance(value, str):
            attributes[key] = value[:_TEXT_LIMIT]
        elif _scalar(value):
            attributes[key] = value
        elif isinstance(value, Mapping):
            for sub, inner in value.items():
                if isinstance(sub, str) and _scalar(inner):
                    attributes[f"{key}.{sub}"] = inner
    return attributes


async def publish_planner_event(event: PlannerEvent, *, trace_id: str | None) -> None:
    """Publish `event` as `planner.<kind>` when someone listens (see the module doc)."""
    if event.event_type in SKIPPED_KINDS or not enabled():
        return
    measurements = {"latency_ms": float(event.latency_ms)} if event.latency_ms is not None else {}
    await publish_point(
        "planner",
        event.event_type,
        # not `event.ts`: the planner's clock is monotonic by default; events need wall time
        trace_id=trace_id,
        attributes=event_attributes(event, content=capture_content()),
        measurements=measurements,
    )


def record_usage(unit: Observation, usage: BudgetUsage) -> None:
    """A run's totals as measurements of its `planner.run` event."""
    unit.measurements.update(
        hops=float(usage.hops),
        llm_calls=float(usage.llm_calls),
        tokens=float(usage.tokens),
        cost_usd=float(usage.cost_usd),
    )
