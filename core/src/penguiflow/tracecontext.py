"""W3C trace context: which distributed trace and span the running code belongs to.

One user request is one trace, whatever processes it crosses. PenguiFlow carries the
context as a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`):

- in the running code, as a context variable (`current_span()`, `using_span(...)`);
- on a `Message`, in `message.meta["traceparent"]` (stamped by `flow.emit` when the caller
  runs inside a span, so a message travels with its context through queues, Redis envelopes
  and subflows);
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
import re
import secrets
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TRACEPARENT",
    "SpanContext",
    "current_span",
    "extract",
    "inject",
    "message_span",
    "new_span_id",
    "root_span",
    "using_span",
]

#: the header and `Message.meta` key that carries the context
TRACEPARENT = "traceparent"

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def new_span_id() -> str:
    """A random, non-zero 16-hex-digit span id."""
    while True:
        span_id = secrets.token_hex(8)
        if span_id != _ZERO_SPAN:
            return span_id


@dataclass(frozen=True, slots=True)
class SpanContext:
    """One span of one distributed trace: `trace_id` (32 lower-case hex digits, not all
    zero), `span_id` (16, not all zero) and whether the trace is `sampled`."""

    trace_id: str
    span_id: str
    sampled: bool = True

    def __post_init__(self) -> None:
        if not _HEX32.match(self.trace_id) or self.trace_id == _ZERO_TRACE:
            raise ValueError(
                f"trace_id must be 32 lower-case hex digits, not all zero; got {self.trace_id!r}"
            )
        if len(self.span_id) != 16 or self.span_id == _ZERO_SPAN or not _is_hex(self.span_id):
            raise ValueError(
                f"span_id must be 16 lower-case hex digits, not all zero; got {self.span_id!r}"
            )

    @property
    def traceparent(self) -> str:
        """The W3C `traceparent` value (version 00)."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def child(self) -> SpanContext:
        """A new span of the same trace (its parent is this one)."""
        return SpanContext(self.trace_id, new_span_id(), self.sampled)

    @classmethod
    def parse(cls, value: object) -> SpanContext | None:
        """The context a `traceparent` value names, or None when `value` is missing or not
        a valid traceparent (never raises: a peer's bad header must not fail a request)."""
        if not isinstance(value, str):
            return None
        match = _TRACEPARENT.match(value.strip().lower())
        if match is None:
            return None
        version, trace_id, span_id, flags, rest = match.groups()
        # Version ff is invalid; version 00 has nothing after the flags.
        if version == "ff" or (version == "00" and rest):
            return None
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            return None
        return cls(trace_id, span_id, bool(int(flags, 16) & 1))


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdef" for c in value)


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
    `trace_id` itself when that is 32 hex digits (PenguiFlow's are: a uuid4's hex), else a
    hash of it; the root span id is a hash of it. Every process derives the same ids."""
    lowered = trace_id.lower()
    digest = hashlib.sha256(trace_id.encode("utf-8")).hexdigest()
    w3c = lowered if _HEX32.match(lowered) and lowered != _ZERO_TRACE else digest[:32]
    span_id = digest[32:48]
    if span_id == _ZERO_SPAN:  # one chance in 2**64; any fixed non-zero id will do
        span_id = "0" * 15 + "1"
    return SpanContext(w3c, span_id)


def message_span(message: Any) -> SpanContext | None:
    """The context a message carries: its `meta["traceparent"]`, else the root span of its
    PenguiFlow trace id; None for a value with neither (a bare payload)."""
    meta = getattr(message, "meta", None)
    if isinstance(meta, Mapping):
        carried = SpanContext.parse(meta.get(TRACEPARENT))
        if carried is not None:
            return carried
    trace_id = getattr(message, "trace_id", None)
    if isinstance(trace_id, str) and trace_id:
        return root_span(trace_id)
    return None


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
