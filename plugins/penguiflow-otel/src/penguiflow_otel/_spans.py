"""PenguiFlow `Event`s as OpenTelemetry spans, with exactly the kernel's ids and times.

The SDK's tracer always makes its own ids, and the kernel's ids are the ones every process,
message and HTTP header already agrees on; so spans are built here as `ReadableSpan`s and
handed to the span processors as finished spans.

What becomes what:

- An event with a `span` and a `duration_ms` (a unit of work) is one span: its ids, its
  parent, `[ts, ts + duration_ms]`.
- An event with no duration (a point in time: `planner.pause`, `planner.resume`,
  `planner.finish`...) is a *span event* on the span it belongs to: its own `span` when it
  has one, else its `parent_span_id`. The span is exported later (units of work are
  published when they end), so point events wait for it in a bounded buffer; one arriving
  after its span was exported cannot be added (exported spans are immutable) and is counted
  in `dropped_events`. Events with neither id belong to no trace: metrics still count them.
- A node attempt is one span (the kernel makes one per attempt: a retry is a sibling of the
  attempt that failed): `flow.node_success`, `flow.node_error` or `flow.node_timeout`,
  named `node <name>` (`flow.node_start` adds nothing to it and is left out).
  `flow.node_retry` and `flow.node_failed` come after their attempt's span was exported:
  they are counted in `dropped_events` (the failed attempt's span already says error;
  metrics count both).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from penguiflow.observability import Event

from ._attributes import flatten

__all__ = ["PREFIX", "SpanConverter", "span_attributes", "span_kind", "span_name"]

#: the prefix of PenguiFlow's own (not semantic-convention) span attributes
PREFIX = "penguiflow."

_CLIENT_FAMILIES = frozenset({"llm", "connector", "remote"})
_KINDS = {
    "internal": SpanKind.INTERNAL,
    "client": SpanKind.CLIENT,
    "server": SpanKind.SERVER,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
#: flow events that end a node invocation's span
_NODE_ENDS = frozenset({"node_success", "node_failed"})
#: flow events of one failed attempt: a span event when the invocation goes on
_ATTEMPT_FAILURES = frozenset({"node_error", "node_timeout"})
#: usage measurements and their GenAI semantic-convention attribute names
_GENAI_USAGE = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_creation_tokens": "gen_ai.usage.cache_creation.input_tokens",
}

#: a tool call's captured content and its GenAI attribute names
_TOOL_CONTENT = {"arguments": "gen_ai.tool.call.arguments", "result": "gen_ai.tool.call.result"}


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _model(attributes: Mapping[str, Any]) -> str | None:
    for key in ("gen_ai.request.model", "gen_ai.response.model", "model"):
        model = _text(attributes.get(key))
        if model:
            return model
    return None


def span_name(event: Event) -> str:
    """The span name of a unit-of-work event: bounded (no ids or free text in it).

    `node <name>` for a node invocation, `<operation> <model>` for an LLM call (the GenAI
    convention: `chat gpt-4o`), `execute_tool <tool>` for a tool call,
    `<connector>.call <tool>` for a connector call, `remote.call <agent>` for a remote
    call, `family.name` otherwise."""
    attributes = event.attributes
    family, name = event.family, event.name
    if family == "flow" and (name in _NODE_ENDS or name in _ATTEMPT_FAILURES):
        node = _text(attributes.get("node_name"))
        return f"node {node}" if node else f"flow.{name}"
    if family == "llm":
        operation = _text(attributes.get("gen_ai.operation.name")) or "chat"
        model = _model(attributes)
        return f"{operation} {model}" if model else operation
    if family == "tool":
        tool = _text(attributes.get("tool"))
        return f"execute_tool {tool}" if tool else event.qualified_name
    if family == "connector":
        connector = _text(attributes.get("connector")) or "connector"
        tool = _text(attributes.get("tool"))
        return f"{connector}.{name} {tool}" if tool else f"{connector}.{name}"
    if family == "remote":
        agent = _text(attributes.get("agent"))
        return f"remote.{name} {agent}" if agent else event.qualified_name
    return event.qualified_name


def span_kind(event: Event) -> SpanKind:
    """CLIENT for LLM, connector and remote calls, INTERNAL otherwise; a producer may say
    otherwise with the attribute `span_kind` (e.g. "server" for the serving side of a
    remote call)."""
    given = _text(event.attributes.get("span_kind"))
    if given and given.lower() in _KINDS:
        return _KINDS[given.lower()]
    return SpanKind.CLIENT if event.family in _CLIENT_FAMILIES else SpanKind.INTERNAL


def _error_text(event: Event) -> str | None:
    error = event.error
    if error:
        return error
    extra = event.attributes.get("extra")
    if isinstance(extra, Mapping) and extra.get("exception"):
        return str(extra["exception"])
    return None


def _failed(event: Event) -> bool:
    status = _text(event.attributes.get("status"))
    if status is not None:
        return status.lower() == "error"
    if event.family == "flow":
        return event.name in _ATTEMPT_FAILURES or event.name == "node_failed"
    return event.error is not None


def _status(event: Event) -> Status:
    if _failed(event):
        return Status(StatusCode.ERROR, _error_text(event))
    if _text(event.attributes.get("status")) == "ok" or event.name == "node_success":
        return Status(StatusCode.OK)
    return Status(StatusCode.UNSET)


def span_attributes(event: Event) -> dict[str, AttributeValue]:
    """The span attributes of `event`: its attributes (PenguiFlow's own under
    `penguiflow.`, semantic-convention ones as they are), its measurements under
    `penguiflow.`, the GenAI usage attributes for an LLM call, and the ids and tenant."""
    attributes = event.attributes
    flat = flatten(attributes, PREFIX)
    flat.pop(f"{PREFIX}span_kind", None)
    for key, value in event.measurements.items():
        flat[f"{PREFIX}{key}"] = float(value)
    flat[f"{PREFIX}event"] = event.qualified_name
    if event.trace_id:
        flat[f"{PREFIX}trace_id"] = event.trace_id
    if event.tenant:
        flat[f"{PREFIX}tenant"] = event.tenant
    error_type = _text(attributes.get("error_type"))
    if error_type and _failed(event):
        flat["error.type"] = error_type
    if event.family == "llm":
        flat.setdefault("gen_ai.operation.name", "chat")
        for key, name in _GENAI_USAGE.items():
            if key in event.measurements:
                flat[name] = int(event.measurements[key])
        model = _model(attributes)
        if model and "gen_ai.request.model" not in flat:
            flat["gen_ai.request.model"] = model
        system = attributes.get("gen_ai.system")
        if system and "gen_ai.provider.name" not in flat:
            flat["gen_ai.provider.name"] = str(system)  # the newer name of gen_ai.system
    elif event.family == "planner" and event.name == "run":
        # A planner run is what the GenAI conventions call an agent invocation.
        flat.setdefault("gen_ai.operation.name", "invoke_agent")
    elif event.family == "tool":
        flat.setdefault("gen_ai.operation.name", "execute_tool")
        tool = _text(attributes.get("tool"))
        if tool:
            flat.setdefault("gen_ai.tool.name", tool)
        # Captured content (only there with PENGUIFLOW_CAPTURE_CONTENT on) under the GenAI
        # names too, which is where MLflow and other GenAI UIs look for a tool's input/output.
        for key, name in _TOOL_CONTENT.items():
            if f"{PREFIX}{key}" in flat:
                flat.setdefault(name, flat[f"{PREFIX}{key}"])
    return flat


def _point_event(event: Event) -> SpanEvent:
    attributes = flatten(event.attributes, PREFIX)
    for key, value in event.measurements.items():
        attributes[f"{PREFIX}{key}"] = float(value)
    if event.duration_ms is not None:
        attributes[f"{PREFIX}duration_ms"] = float(event.duration_ms)
    name = event.qualified_name
    if event.family == "flow" and event.name in _ATTEMPT_FAILURES:
        # OTel's convention for an exception recorded on a span
        name = "exception"
        attributes["exception.type"] = _text(event.attributes.get("error_type")) or event.name
        text = _error_text(event)
        if text:
            attributes["exception.message"] = text
    return SpanEvent(name, attributes, _ns(event.ts))


class SpanConverter:
    """Turns events into finished `ReadableSpan`s (see the module docstring).

    Not thread-safe: the sink calls it from one event loop. Memory is bounded: at most
    `max_pending` spans have point events waiting (the oldest are dropped first), at most
    `max_events` events wait per span, and `max_pending` ids of exported spans are
    remembered."""

    def __init__(
        self,
        resource: Resource,
        scope: InstrumentationScope,
        *,
        max_pending: int = 4096,
        max_events: int = 128,
    ) -> None:
        self.resource = resource
        self.scope = scope
        self.max_pending = max_pending
        self.max_events = max_events
        #: point events that could not be attached to a span
        self.dropped_events = 0
        self._pending: OrderedDict[str, list[SpanEvent]] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()

    def convert(self, event: Event) -> ReadableSpan | None:
        """The span `event` completes, if it is a unit of work; else None (a point event
        waits for its span, see the module docstring)."""
        span = event.span
        if span is not None and event.duration_ms is not None:
            return self._span(event)
        owner = span.span_id if span is not None else event.parent_span_id
        if owner is None or (event.family == "flow" and event.name == "node_start"):
            # node_start says no more than its attempt's span does (it starts then)
            return None
        if owner in self._ended:
            self.dropped_events += 1
        else:
            self._attach(owner, _point_event(event))
        return None

    # -- internals ----------------------------------------------------------------------------

    def _attach(self, span_id: str, span_event: SpanEvent) -> None:
        events = self._pending.get(span_id)
        if events is None:
            if len(self._pending) >= self.max_pending:
                _, lost = self._pending.popitem(last=False)
                self.dropped_events += len(lost)
            events = self._pending[span_id] = []
        if len(events) >= self.max_events:
            self.dropped_events += 1
            return
        events.append(span_event)

    def _span(self, event: Event) -> ReadableSpan:
        span = event.span
        assert span is not None and event.duration_ms is not None
        flags = TraceFlags(TraceFlags.SAMPLED if span.sampled else TraceFlags.DEFAULT)
        context = trace_api.SpanContext(
            int(span.trace_id, 16), int(span.span_id, 16), is_remote=False, trace_flags=flags
        )
        parent = None
        if event.parent_span_id:
            parent = trace_api.SpanContext(
                int(span.trace_id, 16),
                int(event.parent_span_id, 16),
                is_remote=False,
                trace_flags=flags,
            )
        events = self._pending.pop(span.span_id, [])
        start = _ns(event.ts)
        # Added to the start in nanoseconds: seconds as floats lose the sub-microsecond part.
        end = start + max(0, round(event.duration_ms * 1_000_000))
        # A retried invocation's earlier attempts happened before this event's start.
        for span_event in events:
            start = min(start, span_event.timestamp)
        self._ended[span.span_id] = None
        if len(self._ended) > self.max_pending:
            self._ended.popitem(last=False)
        return ReadableSpan(
            name=span_name(event),
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=span_attributes(event),
            events=events,
            kind=span_kind(event),
            status=_status(event),
            start_time=start,
            end_time=end,
            instrumentation_scope=self.scope,
        )
