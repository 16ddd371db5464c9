"""One event envelope for everything PenguiFlow observes, and the sinks that receive it.

Flow events (`FlowEvent`), planner events, LLM calls, connector calls, session tasks and
remote calls are all published as an `Event`: a family and a name, when it happened (and for
how long, for a unit of work), which PenguiFlow trace and which W3C span it belongs to
(`penguiflow.tracecontext`), the tenant, attributes and numeric measurements.

Sinks are async callables taking an `Event`. Plugins contribute them through the
`penguiflow_event_sinks` hook (penguiflow-otel, penguiflow-prometheus); code adds its own
with `add_event_sink`. Producers check `enabled()` before building anything, so an event
nobody listens to costs one function call. A failing sink is logged, never raised: observing
must not break what is observed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import describe_exception
from .tracecontext import SpanContext

if TYPE_CHECKING:
    from .metrics import FlowEvent

__all__ = [
    "FAMILIES",
    "Event",
    "EventSink",
    "add_event_sink",
    "enabled",
    "event_sinks",
    "publish",
]

logger = logging.getLogger("penguiflow.observability")

#: the families PenguiFlow itself publishes (plugins may add their own)
FAMILIES = ("flow", "planner", "llm", "tool", "connector", "session", "remote", "audit")

#: FlowEvent fields kept as attributes, and as measurements, by `Event.from_flow_event`
_FLOW_ATTRIBUTES = (
    "node_name",
    "node_id",
    "attempt",
    "outgoing_edges",
    "queue_maxsize",
    "trace_pending",
    "trace_inflight",
    "trace_cancelled",
)
_FLOW_MEASUREMENTS = ("queue_depth_in", "queue_depth_out")


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Event:
    """One observed thing.

    `family` ("flow", "planner", "llm", "tool", "connector", "session", "remote", "audit")
    and `name` (the kind within it: "node_success", "step", "call"...) say what it is; `ts`
    when it started (seconds since the epoch) and `duration_ms` how long it took, for an
    event that stands for a unit of work (a span, to tracing backends). `trace_id` is the
    PenguiFlow trace id; `span` the W3C context of the work itself, `parent_span_id` the span
    it ran under. `attributes` hold the details (strings, numbers, booleans, small
    structures), `measurements` the numbers metrics are made of (tokens, cost, latency).
    Both are read-only: sinks share one event."""

    family: str
    name: str
    ts: float = field(default_factory=time.time)
    duration_ms: float | None = None
    trace_id: str | None = None
    span: SpanContext | None = None
    parent_span_id: str | None = None
    tenant: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    measurements: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", _frozen(self.attributes))
        object.__setattr__(self, "measurements", _frozen(self.measurements))

    @property
    def qualified_name(self) -> str:
        """`family.name`, e.g. `flow.node_success`."""
        return f"{self.family}.{self.name}"

    @property
    def error(self) -> str | None:
        """The error text of a failed unit of work (attribute `error`), or None."""
        value = self.attributes.get("error")
        return str(value) if value is not None else None

    # -- FlowEvent, both ways ----------------------------------------------------------------

    @classmethod
    def from_flow_event(
        cls,
        event: FlowEvent,
        *,
        span: SpanContext | None = None,
        parent_span_id: str | None = None,
        tenant: str | None = None,
    ) -> Event:
        """The envelope of a `FlowEvent` (family "flow", name its `event_type`); nothing is
        lost: `to_flow_event()` gives it back equal. A latency becomes `duration_ms`."""
        attributes: dict[str, Any] = {name: getattr(event, name) for name in _FLOW_ATTRIBUTES}
        attributes["extra"] = dict(event.extra)
        measurements = {name: float(getattr(event, name)) for name in _FLOW_MEASUREMENTS}
        return cls(
            family="flow",
            name=event.event_type,
            ts=event.ts,
            duration_ms=event.latency_ms,
            trace_id=event.trace_id,
            span=span,
            parent_span_id=parent_span_id,
            tenant=tenant,
            attributes=attributes,
            measurements=measurements,
        )

    def to_flow_event(self) -> FlowEvent:
        """The `FlowEvent` this envelope was made from (family "flow" only)."""
        from .metrics import FlowEvent

        if self.family != "flow":
            raise ValueError(
                f"only flow events convert to FlowEvent; this one is {self.qualified_name!r}"
            )
        attributes = self.attributes
        return FlowEvent(
            event_type=self.name,
            ts=self.ts,
            node_name=attributes.get("node_name"),
            node_id=attributes.get("node_id"),
            trace_id=self.trace_id,
            attempt=int(attributes.get("attempt", 0)),
            latency_ms=self.duration_ms,
            queue_depth_in=int(self.measurements.get("queue_depth_in", 0)),
            queue_depth_out=int(self.measurements.get("queue_depth_out", 0)),
            outgoing_edges=int(attributes.get("outgoing_edges", 0)),
            queue_maxsize=int(attributes.get("queue_maxsize", 0)),
            trace_pending=attributes.get("trace_pending"),
            trace_inflight=int(attributes.get("trace_inflight", 0)),
            trace_cancelled=bool(attributes.get("trace_cancelled", False)),
            extra=dict(attributes.get("extra") or {}),
        )


#: An event sink: an async callable given each published `Event`.
EventSink = Callable[[Event], Awaitable[None]]


class _Sinks:
    """The sinks of this process: those the hook contributed (reloaded when the hook host
    changes, see `penguiflow.plugins.reset_hooks`) and those added in code."""

    __slots__ = ("added", "contributed", "host_seen", "snapshot")

    def __init__(self) -> None:
        self.added: list[EventSink] = []
        self.contributed: tuple[EventSink, ...] = ()
        #: the hook host `contributed` was read from (a 1-tuple; empty before the first read)
        self.host_seen: tuple[Any, ...] = ()
        self.snapshot: tuple[EventSink, ...] = ()

    def current(self) -> tuple[EventSink, ...]:
        from .plugins import _hooks

        host = _hooks._active
        if not self.host_seen or self.host_seen[0] is not host:
            self._reload()
        return self.snapshot

    def _reload(self) -> None:
        from .plugins import _hooks, active_hooks

        host = active_hooks()
        contributed: list[EventSink] = []
        if host is not None:
            try:
                for sinks in host.hook.penguiflow_event_sinks(config=host.config):
                    contributed.extend(sinks or ())
            except Exception as exc:  # strict mode raised already in the host; be safe here
                logger.error(
                    "penguiflow_event_sinks failed; events go only to sinks added in code: %s",
                    describe_exception(exc),
                )
        self.contributed = tuple(contributed)
        # Remember the host as it is now (active_hooks may have just loaded it).
        self.host_seen = (_hooks._active,)
        self.snapshot = (*self.contributed, *self.added)

    def add(self, sink: EventSink) -> Callable[[], None]:
        self.added.append(sink)
        self.snapshot = (*self.contributed, *self.added)

        def remove() -> None:
            if sink in self.added:
                self.added.remove(sink)
                self.snapshot = (*self.contributed, *self.added)

        return remove


_sinks = _Sinks()


def event_sinks() -> tuple[EventSink, ...]:
    """The sinks every published event goes to: the hook's, then those added in code."""
    return _sinks.current()


def enabled() -> bool:
    """Whether anyone listens: producers check this before building an event."""
    return bool(_sinks.current())


def add_event_sink(sink: EventSink) -> Callable[[], None]:
    """Send every event this process publishes to `sink` too; returns a function that
    removes it. For tests and applications; plugins use the `penguiflow_event_sinks` hook."""
    if not callable(sink):
        raise TypeError(
            f"an event sink must be an async callable taking an Event, got {type(sink).__name__}"
        )
    return _sinks.add(sink)


async def publish(event: Event) -> None:
    """Deliver `event` to every sink, in order. A sink that fails is logged and the others
    still get the event; nothing is raised."""
    for sink in _sinks.current():
        try:
            await sink(event)
        except Exception as exc:
            logger.warning(
                "event sink %r failed on %s: %s",
                sink,
                event.qualified_name,
                describe_exception(exc),
            )
