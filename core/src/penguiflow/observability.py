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

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import InvalidTypeError, UsageError, describe_exception
from .tracecontext import SpanContext, new_span_id

if TYPE_CHECKING:
    from .metrics import FlowEvent

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "CONTENT_LIMIT",
    "FAMILIES",
    "Event",
    "EventSink",
    "Observation",
    "add_event_sink",
    "capture_content",
    "clip_content",
    "enabled",
    "event_sinks",
    "observe",
    "publish",
    "publish_point",
]

logger = logging.getLogger("penguiflow.observability")

#: the families PenguiFlow itself publishes (plugins may add their own)
FAMILIES = ("flow", "planner", "llm", "tool", "connector", "session", "remote", "audit")

#: the flow events that end a node invocation (one attempt): the only ones given a duration,
#: so exporters see one span per invocation, not one per event that mentions it
_FLOW_UNITS = frozenset({"node_success", "node_error", "node_timeout"})


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
        lost: `to_flow_event()` gives it back equal.

        The events that end an invocation (node_success, node_error, node_timeout) are units
        of work: their latency becomes `duration_ms` and `ts` their start (the FlowEvent's
        own time, when the invocation ended, is kept as attribute `recorded_ts`). Any other
        latency (node_failed repeats its last attempt's) stays an attribute, `latency_ms`."""
        envelope = _flow_envelope(
            event.event_type,
            event.ts,
            event.node_name,
            event.node_id,
            event.trace_id,
            event.attempt,
            event.latency_ms,
            event.queue_depth_in,
            event.queue_depth_out,
            event.outgoing_edges,
            event.queue_maxsize,
            event.trace_pending,
            event.trace_inflight,
            event.trace_cancelled,
            dict(event.extra),
            span,
            parent_span_id,
            tenant,
        )
        if cls is Event:
            return envelope
        # A subclass: its own constructor (and checks) apply.
        return cls(
            family=envelope.family,
            name=envelope.name,
            ts=envelope.ts,
            duration_ms=envelope.duration_ms,
            trace_id=envelope.trace_id,
            span=envelope.span,
            parent_span_id=envelope.parent_span_id,
            tenant=envelope.tenant,
            attributes=envelope.attributes,
            measurements=envelope.measurements,
        )

    def to_flow_event(self) -> FlowEvent:
        """The `FlowEvent` this envelope was made from (family "flow" only)."""
        from .metrics import FlowEvent

        if self.family != "flow":
            raise UsageError(
                f"only flow events convert to FlowEvent; this one is {self.qualified_name!r}"
            )
        attributes = self.attributes
        latency = self.duration_ms
        if latency is None:
            latency = attributes.get("latency_ms")
        return FlowEvent(
            event_type=self.name,
            ts=float(attributes.get("recorded_ts", self.ts)),
            node_name=attributes.get("node_name"),
            node_id=attributes.get("node_id"),
            trace_id=self.trace_id,
            attempt=int(attributes.get("attempt", 0)),
            latency_ms=latency,
            queue_depth_in=int(self.measurements.get("queue_depth_in", 0)),
            queue_depth_out=int(self.measurements.get("queue_depth_out", 0)),
            outgoing_edges=int(attributes.get("outgoing_edges", 0)),
            queue_maxsize=int(attributes.get("queue_maxsize", 0)),
            trace_pending=attributes.get("trace_pending"),
            trace_inflight=int(attributes.get("trace_inflight", 0)),
            trace_cancelled=bool(attributes.get("trace_cancelled", False)),
            extra=dict(attributes.get("extra") or {}),
        )


def _flow_envelope(
    event_type: str,
    ts: float,
    node_name: str | None,
    node_id: str | None,
    trace_id: str | None,
    attempt: int,
    latency_ms: float | None,
    queue_depth_in: int,
    queue_depth_out: int,
    outgoing_edges: int,
    queue_maxsize: int,
    trace_pending: int | None,
    trace_inflight: int,
    trace_cancelled: bool,
    extra: dict[str, Any],
    span: SpanContext | None,
    parent_span_id: str | None,
    tenant: str | None,
) -> Event:
    """The `Event` of a flow event given by its `FlowEvent` fields (`extra` is taken, not
    copied): `Event.from_flow_event`, and the runtimes when only sinks listen (then no
    `FlowEvent` is built at all). Private to the kernel."""
    attributes: dict[str, Any] = {
        "node_name": node_name,
        "node_id": node_id,
        "attempt": attempt,
        "outgoing_edges": outgoing_edges,
        "queue_maxsize": queue_maxsize,
        "trace_pending": trace_pending,
        "trace_inflight": trace_inflight,
        "trace_cancelled": trace_cancelled,
        "extra": extra,
    }
    duration_ms: float | None = None
    if latency_ms is not None:
        if event_type in _FLOW_UNITS:
            duration_ms = latency_ms
            attributes["recorded_ts"] = ts
            ts -= latency_ms / 1000.0
        else:
            attributes["latency_ms"] = latency_ms
    # Built field by field through the slots: the dictionaries are ours already, so the
    # copies the constructor makes are skipped (this runs for every flow event while sinks
    # listen; a slot's own setter measured faster than object.__setattr__).
    envelope = object.__new__(Event)
    _set_family(envelope, "flow")
    _set_name(envelope, event_type)
    _set_ts(envelope, ts)
    _set_duration_ms(envelope, duration_ms)
    _set_trace_id(envelope, trace_id)
    _set_span(envelope, span)
    _set_parent_span_id(envelope, parent_span_id)
    _set_tenant(envelope, tenant)
    _set_attributes(envelope, MappingProxyType(attributes))
    _set_measurements(
        envelope,
        MappingProxyType(
            {"queue_depth_in": float(queue_depth_in), "queue_depth_out": float(queue_depth_out)}
        ),
    )
    return envelope


def _slot_setter(name: str) -> Callable[[Event, Any], None]:
    # The slot's member descriptor; its __set__ ignores the frozen dataclass's __setattr__.
    setter: Callable[[Event, Any], None] = vars(Event)[name].__set__
    return setter


_set_family = _slot_setter("family")
_set_name = _slot_setter("name")
_set_ts = _slot_setter("ts")
_set_duration_ms = _slot_setter("duration_ms")
_set_trace_id = _slot_setter("trace_id")
_set_span = _slot_setter("span")
_set_parent_span_id = _slot_setter("parent_span_id")
_set_tenant = _slot_setter("tenant")
_set_attributes = _slot_setter("attributes")
_set_measurements = _slot_setter("measurements")


#: An event sink: an async callable given each published `Event`.
EventSink = Callable[[Event], Awaitable[None]]


class _Sinks:
    """The sinks of this process: those the hook contributed (reloaded when the hook host
    changes, see `penguiflow.plugins.reset_hooks`) and those added in code.

    `snapshot` is what events go to. The runtimes read it directly on their per-message path
    (one attribute read) after `current()` refreshed it when their flow started; everything
    else calls `current()`, which notices a new hook host first."""

    __slots__ = ("added", "contributed", "hooks", "host_seen", "snapshot")

    def __init__(self) -> None:
        self.added: list[EventSink] = []
        self.contributed: tuple[EventSink, ...] = ()
        #: penguiflow.plugins._hooks once imported (its `_active` is the process's host);
        #: kept so the check below is two attribute reads, not an import statement
        self.hooks: Any = None
        #: the hook host `contributed` was read from
        self.host_seen: Any = None
        self.snapshot: tuple[EventSink, ...] = ()

    def current(self) -> tuple[EventSink, ...]:
        hooks = self.hooks
        if hooks is None or hooks._active is not self.host_seen:
            self._reload()
        return self.snapshot

    def _reload(self) -> None:
        from .plugins import _hooks, active_hooks

        self.hooks = _hooks
        contributed: list[EventSink] = []
        try:
            host = active_hooks()
        except Exception as exc:  # strict mode: the flow's own start reports it
            logger.error(
                "hook plugins failed to load; events go only to sinks added in code: %s",
                describe_exception(exc),
            )
            host = None
        if host is not None:
            contributed = _contributed(host)
        self.contributed = tuple(contributed)
        # Remember the host as it is now (active_hooks may have just loaded it).
        self.host_seen = _hooks._active
        self.snapshot = (*self.contributed, *self.added)

    def add(self, sink: EventSink) -> Callable[[], None]:
        self.added.append(sink)
        self.snapshot = (*self.contributed, *self.added)

        def remove() -> None:
            if sink in self.added:
                self.added.remove(sink)
                self.snapshot = (*self.contributed, *self.added)

        return remove


def _contributed(host: Any) -> list[EventSink]:
    """Every plugin's sinks, through pluggy (ordering, wrappers and tracing apply). The hook
    is guarded like the lifecycle hooks (`penguiflow.plugins._guard`): a plugin whose
    implementation raises is recorded as failed, logged and skipped, so the others' sinks
    still receive events; in strict mode it raises. What is not callable is logged and left
    out."""
    caller = getattr(host.hook, "penguiflow_event_sinks", None)
    if caller is None:
        return []
    sinks: list[EventSink] = []
    for returned in caller(config=host.config):
        for sink in returned or ():
            if callable(sink):
                sinks.append(sink)
            else:
                logger.error(
                    "a penguiflow_event_sinks implementation returned %s %r, not an async "
                    "callable taking an Event; it is left out",
                    type(sink).__name__,
                    sink,
                )
    return sinks


_sinks = _Sinks()

#: The tenant of the message a node is processing (from its headers), set by the node engine
#: only while sinks listen: the runtimes put it on that invocation's flow events.
_current_tenant: ContextVar[str | None] = ContextVar("penguiflow_current_tenant", default=None)

#: The PenguiFlow trace id of the unit of work being observed (set by `Observation` while its
#: block runs): work observed inside it without a trace id of its own (an LLM client called
#: by a planner step) joins that trace, as its span joins the step's span.
_observed_trace: ContextVar[str | None] = ContextVar("penguiflow_observed_trace", default=None)


def event_sinks() -> tuple[EventSink, ...]:
    """The sinks every published event goes to: the hook's, then those added in code."""
    return _sinks.current()


def enabled() -> bool:
    """Whether anyone listens: producers check this before building an event (a few
    attribute reads; the hook's sinks are read again after `reset_hooks`)."""
    return bool(_sinks.current())


def add_event_sink(sink: EventSink) -> Callable[[], None]:
    """Send every event this process publishes to `sink` too; returns a function that
    removes it. For tests and applications; plugins use the `penguiflow_event_sinks` hook."""
    if not callable(sink):
        raise InvalidTypeError(
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
            _sink_failed(sink, event, exc)


def _sink_failed(sink: Any, event: Event, exc: Exception) -> None:
    logger.warning(
        "event sink %s failed on %s: %s: %s",
        _sink_name(sink),
        event.qualified_name,
        type(exc).__name__,
        describe_exception(exc),
    )


def _sink_name(sink: Any) -> str:
    # A sink's repr is user code too: one that raises must not hide which sink failed.
    name = getattr(sink, "__qualname__", None) or type(sink).__qualname__
    module = getattr(sink, "__module__", None) or type(sink).__module__
    return f"{module}.{name}"


# -- content capture -----------------------------------------------------------------------------

#: the environment variable that turns content capture on (`1`, `true`, `yes` or `on`)
CAPTURE_CONTENT_ENV = "PENGUIFLOW_CAPTURE_CONTENT"
#: the most characters of one piece of content an event carries when capture is on
CONTENT_LIMIT = 4096

_TRUE = frozenset({"1", "true", "yes", "on"})


def capture_content() -> bool:
    """Whether events may carry content (prompts, replies, tool arguments and results,
    queries): only when `PENGUIFLOW_CAPTURE_CONTENT` is `1`/`true`/`yes`/`on`. Off by
    default, because content may hold personal data and every sink (a tracing backend, a
    log) would keep it. Read on each call, so a test or an operator can flip it at run time;
    producers call it only after `enabled()` said someone listens."""
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _TRUE


def clip_content(value: Any, limit: int = CONTENT_LIMIT) -> str:
    """`value` as text for an event attribute (strings as they are, anything else as JSON),
    cut to `limit` characters with a marker saying how much was left out."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = describe_exception(value) if isinstance(value, BaseException) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


# -- units of work -------------------------------------------------------------------------------
# Every producer (planner, LLM clients, connectors, remote calls, session tasks) observes its
# units of work the same way: one span under the current one, set as current while the work
# runs, and one event published when it ends. Written once here so they cannot drift apart.


class Observation:
    """One unit of work being observed; made by `observe(...)` and used as
    `async with observe("llm", "call", ...) as unit:`.

    While the block runs, `unit.span` is the current span (`penguiflow.tracecontext`), so
    work inside it (an LLM call inside a tool) gets it as parent. When the block ends, one
    `Event` is published with `ts` = the start, `duration_ms`, the span and its parent, the
    attributes and measurements set meanwhile (`unit.attributes[...] = ...`), and
    `attributes["status"]`: "ok", or "error" with `error` and `error_type` when the block
    raised (or when `unit.fail(...)` said so). When nobody listens (`enabled()` is false)
    nothing is measured, no span is made and `unit.span` is None: the block runs as is."""

    __slots__ = (
        "_started",
        "_token",
        "_trace_token",
        "active",
        "attributes",
        "family",
        "measurements",
        "name",
        "parent_span_id",
        "span",
        "tenant",
        "trace_id",
        "ts",
    )

    def __init__(
        self,
        family: str,
        name: str,
        *,
        trace_id: str | None = None,
        tenant: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        parent: SpanContext | None = None,
    ) -> None:
        self.family = family
        self.name = name
        self.trace_id = trace_id
        self.tenant = tenant
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.measurements: dict[str, float] = {}
        self.active = False
        self.span: SpanContext | None = parent  # the parent until the block starts
        self.parent_span_id: str | None = None
        self.ts = 0.0
        self._started = 0.0
        self._token: Any = None
        self._trace_token: Any = None

    def fail(self, error: BaseException | str, error_type: str | None = None) -> None:
        """Mark the work failed without raising (a tool call whose failure became an
        observation, say): status "error", `error` text and `error_type`."""
        if isinstance(error, BaseException):
            text = describe_exception(error)
            error_type = error_type or type(error).__name__
        else:
            text = error
        self.attributes["status"] = "error"
        self.attributes["error"] = text
        self.attributes["error_type"] = error_type or "Error"

    async def __aenter__(self) -> Observation:
        if not enabled():
            self.span = None
            return self
        from .tracecontext import _current, current_span, root_span

        parent = self.span if self.span is not None else current_span()
        if parent is None and self.trace_id:
            parent = root_span(self.trace_id)
        if parent is not None:
            self.span = parent.child()
            self.parent_span_id = parent.span_id
        else:  # nothing to join: this work starts a trace of its own
            self.span = SpanContext(secrets.token_hex(16), new_span_id())
        # Without a trace id of its own, the work belongs to the trace of the work it runs
        # in: its event must reach whoever watches that trace (a live view, a trace store),
        # not only carry a span under it.
        if self.trace_id is None:
            self.trace_id = _observed_trace.get()
        else:
            self._trace_token = _observed_trace.set(self.trace_id)
        self.active = True
        self.ts = time.time()
        self._started = time.perf_counter()
        self._token = _current.set(self.span)
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if not self.active:
            return
        from .tracecontext import _current

        self.active = False
        duration_ms = (time.perf_counter() - self._started) * 1000.0
        # Exited in another context (a generator closed elsewhere): nothing to restore there.
        with contextlib.suppress(ValueError):
            _current.reset(self._token)
        if self._trace_token is not None:
            with contextlib.suppress(ValueError):
                _observed_trace.reset(self._trace_token)
            self._trace_token = None
        if exc is not None and self.attributes.get("status") != "error":
            if isinstance(exc, Exception):
                self.fail(exc)
            else:  # cancelled (or interrupted): not the work's own failure
                self.attributes["status"] = "cancelled"
        self.attributes.setdefault("status", "ok")
        event = Event(
            family=self.family,
            name=self.name,
            ts=self.ts,
            duration_ms=duration_ms,
            trace_id=self.trace_id,
            span=self.span,
            parent_span_id=self.parent_span_id,
            tenant=self.tenant,
            attributes=self.attributes,
            measurements=self.measurements,
        )
        import anyio

        # Shielded: a cancelled unit of work is still reported (sinks do not block).
        with anyio.CancelScope(shield=True):
            await publish(event)


def observe(
    family: str,
    name: str,
    *,
    trace_id: str | None = None,
    tenant: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    parent: SpanContext | None = None,
) -> Observation:
    """Observe one unit of work as `family.name` (see `Observation`). Its span is a child of
    `parent`, else of the current span, else of the root span of `trace_id`; with none of
    them it starts a new trace. Without `trace_id`, its event carries the trace id of the
    observed work it runs in (an LLM call inside a planner step: the planner run's)."""
    return Observation(
        family, name, trace_id=trace_id, tenant=tenant, attributes=attributes, parent=parent
    )


async def publish_point(
    family: str,
    name: str,
    *,
    trace_id: str | None = None,
    tenant: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    measurements: Mapping[str, float] | None = None,
    ts: float | None = None,
) -> None:
    """Publish something that happened at one moment (a pause, a finish, a state change):
    no duration, and `span` = the span it happened in (the current one), as flow events
    such as `node_start` carry their invocation's span. Does nothing when nobody listens."""
    if not enabled():
        return
    from .tracecontext import current_span

    await publish(
        Event(
            family=family,
            name=name,
            ts=time.time() if ts is None else ts,
            trace_id=trace_id,
            span=current_span(),
            tenant=tenant,
            attributes=attributes or {},
            measurements=measurements or {},
        )
    )
