"""W3C trace context: which distributed trace and span the running code belongs to.

One user request is one trace, whatever processes it crosses. PenguiFlow carries the
context as a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`):

- in the running code, as a context variable (`current_span()`, `using_span(...)`);
- on a `Message`, in `message.meta["traceparent"]` (`stamp_message`: done by `flow.emit`
  when the caller runs inside a span, and by the runtimes for what a node sends while it runs
  in its span, so a message travels with its context through queues, Redis envelopes and
  subflows);
- on HTTP requests, as the `traceparent` header (`inject(headers)` / `extract(headers)`):
  LLM and MCP requests, A2A calls to remote agents.

A PenguiFlow trace with no incoming context still has one: `root_span(trace_id)` derives the
W3C trace id and a root span id from the PenguiFlow trace id, so every process that sees a
message agrees on them without being told. The kernel makes no spans of its own: it stamps
ids on `penguiflow.observability.Event`s, and exporters (penguiflow-otel) turn those into
spans.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import PenguiFlowError

__all__ = [
    "TRACEPARENT",
    "SpanContext",
    "SpanContextError",
    "current_span",
    "extract",
    "inject",
    "message_span",
    "new_span_id",
    "root_span",
    "stamp_message",
    "using_span",
]

_M = TypeVar("_M")

#: the header and `Message.meta` key that carries the context
TRACEPARENT = "traceparent"

# W3C: lower-case hex only (an upper-case traceparent is invalid, as in OpenTelemetry's own
# propagator); surrounding spaces and tabs are tolerated.
_TRACEPARENT = re.compile(
    r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^ \t]*)?[ \t]*"
)
# fullmatch only: `$` would also accept a trailing newline
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def new_span_id() -> str:
    """A random, non-zero 16-hex-digit span id."""
    # random.getrandbits, as OpenTelemetry's id generator: span ids need uniqueness, not
    # secrecy, and a system call per span measured ten times slower on the per-message path
    # (the generator is seeded from the OS, and again in a forked child).
    while True:
        bits = random.getrandbits(64)
        if bits:
            return f"{bits:016x}"


class SpanContextError(PenguiFlowError, ValueError):
    """A `SpanContext` was given ids that are not W3C trace context ids (the message names the
    field and the form it must have). `SpanContext.parse` never raises it: a peer's bad header
    is ignored instead."""


@dataclass(frozen=True, slots=True)
class SpanContext:
    """One span of one distributed trace: `trace_id` (32 lower-case hex digits, not all
    zero), `span_id` (16, not all zero) and whether the trace is `sampled`.

    `parent_span_id` is the span this one was made under by `child()` (None for a context
    read from a `traceparent` or derived by `root_span`): producers put it on their events.
    It takes no part in equality: two contexts are the same span when their ids are."""

    trace_id: str
    span_id: str
    sampled: bool = True
    parent_span_id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _HEX32.fullmatch(self.trace_id) or self.trace_id == _ZERO_TRACE:
            raise SpanContextError(
                f"trace_id must be 32 lower-case hex digits, not all zero; got {self.trace_id!r}"
            )
        if not _HEX16.fullmatch(self.span_id) or self.span_id == _ZERO_SPAN:
            raise SpanContextError(
                f"span_id must be 16 lower-case hex digits, not all zero; got {self.span_id!r}"
            )
        parent = self.parent_span_id
        if parent is not None and not _HEX16.fullmatch(parent):
            raise SpanContextError(
                f"parent_span_id must be None or 16 lower-case hex digits; got {parent!r}"
            )

    @property
    def traceparent(self) -> str:
        """The W3C `traceparent` value (version 00)."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def child(self) -> SpanContext:
        """A new span of the same trace (its parent is this one)."""
        # Every id is already valid: skip the checks (this runs per node invocation while
        # sinks listen).
        return _trusted(self.trace_id, new_span_id(), self.sampled, self.span_id)

    @classmethod
    def parse(cls, value: object) -> SpanContext | None:
        """The context a `traceparent` value names, or None when `value` is missing or not
        a valid traceparent (never raises: a peer's bad header must not fail a request)."""
        if not isinstance(value, str):
            return None
        match = _TRACEPARENT.fullmatch(value)
        if match is None:
            return None
        version, trace_id, span_id, flags, rest = match.groups()
        # Version ff is invalid; version 00 has nothing after the flags.
        if version == "ff" or (version == "00" and rest):
            return None
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            return None
        sampled = bool(int(flags, 16) & 1)
        if cls is not SpanContext:  # a subclass gets its own constructor
            return cls(trace_id, span_id, sampled)
        # The pattern checked both ids already (the next hop parses every message's).
        return _trusted(trace_id, span_id, sampled, None)


def _trusted(trace_id: str, span_id: str, sampled: bool, parent_span_id: str | None) -> SpanContext:
    """A `SpanContext` of ids already known valid, built without re-checking them."""
    span = object.__new__(SpanContext)
    # Through the slots' own setters (a frozen dataclass refuses plain assignment; these
    # measured faster than object.__setattr__).
    _set_trace_id(span, trace_id)
    _set_span_id(span, span_id)
    _set_sampled(span, sampled)
    _set_parent_span_id(span, parent_span_id)
    return span


def _slot_setter(name: str) -> Any:
    return vars(SpanContext)[name].__set__


_set_trace_id = _slot_setter("trace_id")
_set_span_id = _slot_setter("span_id")
_set_sampled = _slot_setter("sampled")
_set_parent_span_id = _slot_setter("parent_span_id")


_current: ContextVar[SpanContext | None] = ContextVar("penguiflow_current_span", default=None)


def current_span() -> SpanContext | None:
    """The span the running code is part of, or None outside any."""
    return _current.get()


@contextmanager
def using_span(span: SpanContext | None) -> Iterator[SpanContext | None]:
    """Run the block (and the tasks it starts) as part of `span`; None clears it."""
    token = _current.set(span)
    try:
        yield span
    finally:
        _current.reset(token)


def root_span(trace_id: str) -> SpanContext:
    """The context of a PenguiFlow trace that came with none: its W3C trace id is
    `trace_id` itself when that is 32 lower-case hex digits (PenguiFlow's are: a uuid4's
    hex), else a
    hash of it; the root span id is a hash of it. Every process derives the same ids."""
    digest = hashlib.sha256(trace_id.encode("utf-8")).hexdigest()
    # Only an id that already is a valid W3C trace id is used as is: lower-casing one would
    # put two PenguiFlow traces differing in case into one W3C trace.
    w3c = trace_id if _HEX32.fullmatch(trace_id) and trace_id != _ZERO_TRACE else digest[:32]
    span_id = digest[32:48]
    if span_id == _ZERO_SPAN:  # one chance in 2**64; any fixed non-zero id will do
        span_id = "0" * 15 + "1"
    # Both ids are valid by construction (checked above, or hex digits of the digest).
    return _trusted(w3c, span_id, True, None)


def message_span(message: Any) -> SpanContext | None:
    """The context a message carries: its `meta["traceparent"]`, else the root span of its
    PenguiFlow trace id; None for a value with neither (a bare payload)."""
    meta = getattr(message, "meta", None)
    # (`type(...) is dict` first: a Message's meta is one, and the ABC check costs more)
    if type(meta) is dict or isinstance(meta, Mapping):
        carried = SpanContext.parse(meta.get(TRACEPARENT))
        if carried is not None:
            return carried
    trace_id = getattr(message, "trace_id", None)
    if isinstance(trace_id, str) and trace_id:
        return root_span(trace_id)
    return None


#: The spans stamped on messages, by the traceparent written, so the node that receives one
#: reads its parent span back without parsing (`_parent_of`; the ids a traceparent names are
#: the same whoever reads them). Bounded: emptied when full; a traceparent not found is parsed.
_stamped: dict[str, SpanContext] = {}
_STAMPED_MAX = 1024


def _parent_of(message: Any) -> SpanContext | None:
    """`message_span(message)` for the node engine: the same ids, but a span this process
    stamped comes back as it was (with its own `parent_span_id`), not parsed again. Only
    the ids of the result are used (as the parent of the node's span)."""
    meta = getattr(message, "meta", None)
    if type(meta) is dict:
        carried = meta.get(TRACEPARENT)
        if carried is not None:
            span = _stamped.get(carried)
            if span is not None:
                return span
    return message_span(message)


def stamp_message(message: _M, span: SpanContext | None = None) -> _M:
    """`message` as it should leave the running code: carrying `span` (default: the current
    span) as `meta["traceparent"]`, so whatever handles it next joins the trace.

    A message that carries a valid traceparent of its own keeps it (the user set it), except one
    inherited from the message `span` was made for (a copy of a node's input: its traceparent
    names `span`'s parent), which is replaced. The message is copied, never changed in place
    (a message fanned out to several nodes is one object). A value that is not a `Message`,
    and everything outside a span, is returned as it is."""
    if span is None:
        span = _current.get()
        if span is None:
            return message
    meta = getattr(message, "meta", None)
    if not isinstance(meta, dict):
        return message
    carried = meta.get(TRACEPARENT)
    value = span.traceparent
    if carried is not None:
        if carried == value:
            return message
        flags = value[-3:]
        inherited = f"00-{span.trace_id}-{span.parent_span_id}{flags}"
        # The usual case (a node's output copied from its input) without parsing.
        own = SpanContext.parse(carried) if carried != inherited else None
        # An invalid traceparent is read as none anywhere (`message_span`): replace it too.
        if own is not None and (
            own.span_id != span.parent_span_id or own.trace_id != span.trace_id
        ):
            return message
    stamped = _stamped
    if len(stamped) >= _STAMPED_MAX:
        stamped.clear()
    stamped[value] = span
    return _with_meta(message, {**meta, TRACEPARENT: value})


#: The kernel's own message models (set on first use: importing them here would load
#: pydantic with this module)
_plain_models: tuple[type, ...] = ()


def _with_meta(message: _M, meta: dict[str, Any]) -> _M:
    """A copy of `message` whose `meta` is `meta` (what `model_copy(update=...)` gives).

    For `Message` and `StreamChunk` the copy is built directly, about twice as fast as
    `model_copy` (this runs for every message a node sends while sinks listen). It is the
    same shallow copy: those models have no private attributes and ignore extra fields, so
    one is its field dictionary and the set of fields it was given (`test_tracecontext.py`
    compares the two). Any other model, a subclass included, goes through `model_copy`."""
    global _plain_models
    if not _plain_models:
        from .types import Message, StreamChunk

        _plain_models = (Message, StreamChunk)
    cls = type(message)
    state: Any = message
    if (
        cls in _plain_models
        and state.__pydantic_extra__ is None
        and state.__pydantic_private__ is None
    ):
        fields = dict(state.__dict__)
        fields["meta"] = meta
        copied = cls.__new__(cls)
        # object.__setattr__: BaseModel's own __setattr__ would validate.
        setattr_ = object.__setattr__
        setattr_(copied, "__dict__", fields)
        setattr_(copied, "__pydantic_fields_set__", {*state.__pydantic_fields_set__, "meta"})
        setattr_(copied, "__pydantic_extra__", None)
        setattr_(copied, "__pydantic_private__", None)
        return copied
    copy = getattr(message, "model_copy", None)
    if copy is None:
        return message
    stamped: _M = copy(update={"meta": meta})
    return stamped


def inject(headers: MutableMapping[str, str], span: SpanContext | None = None) -> None:
    """Add the `traceparent` of `span` (default: the current span) to outgoing `headers`;
    headers already carrying one are left alone, as is everything outside a span."""
    span = span if span is not None else current_span()
    if span is None:
        return
    if any(key.lower() == TRACEPARENT for key in headers):
        return
    headers[TRACEPARENT] = span.traceparent


def extract(headers: Mapping[str, Any]) -> SpanContext | None:
    """The context incoming `headers` carry (case-insensitive `traceparent`), or None."""
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == TRACEPARENT:
            return SpanContext.parse(value)
    return None
