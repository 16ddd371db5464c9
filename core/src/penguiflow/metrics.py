"""`FlowEvent`: the record of one thing the runtime did, built only when someone listens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["FlowEvent"]


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """An immutable runtime event (node start, success, retry, cancel, remote call...)."""

    event_type: str
    ts: float
    node_name: str | None
    node_id: str | None
    trace_id: str | None
    attempt: int
    latency_ms: float | None
    queue_depth_in: int
    queue_depth_out: int
    outgoing_edges: int
    queue_maxsize: int
    trace_pending: int | None
    trace_inflight: int
    trace_cancelled: bool
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only copy: listeners share one event object and must not affect each other.
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def queue_depth(self) -> int:
        return self.queue_depth_in + self.queue_depth_out

    @property
    def error_payload(self) -> Mapping[str, Any] | None:
        """The `FlowError` payload of a `node_failed` event, read-only; otherwise `None`."""
        raw = self.extra.get("flow_error")
        if isinstance(raw, Mapping):
            return MappingProxyType(dict(raw))
        return None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "ts": self.ts,
            "event": self.event_type,
            "node_name": self.node_name,
            "node_id": self.node_id,
            "trace_id": self.trace_id,
            "latency_ms": self.latency_ms,
            "q_depth_in": self.queue_depth_in,
            "q_depth_out": self.queue_depth_out,
            "q_depth_total": self.queue_depth,
            "outgoing": self.outgoing_edges,
            "queue_maxsize": self.queue_maxsize,
            "attempt": self.attempt,
            "trace_inflight": self.trace_inflight,
            "trace_cancelled": self.trace_cancelled,
        }
        if self.trace_pending is not None:
            payload["trace_pending"] = self.trace_pending
        payload.update(self.extra)
        return payload

    def metric_samples(self) -> dict[str, float]:
        samples: dict[str, float] = {
            "queue_depth_in": float(self.queue_depth_in),
            "queue_depth_out": float(self.queue_depth_out),
            "queue_depth_total": float(self.queue_depth),
            "attempt": float(self.attempt),
            "trace_inflight": float(self.trace_inflight),
            "trace_cancelled": 1.0 if self.trace_cancelled else 0.0,
        }
        if self.trace_pending is not None:
            samples["trace_pending"] = float(self.trace_pending)
        if self.latency_ms is not None:
            samples["latency_ms"] = float(self.latency_ms)
        extra_latency = self.extra.get("latency_ms")
        if extra_latency is not None:
            samples["latency_ms"] = float(extra_latency)
        return samples

    def tag_values(self) -> dict[str, str]:
        tags: dict[str, str] = {"event_type": self.event_type}
        if self.node_name is not None:
            tags["node_name"] = self.node_name
        if self.node_id is not None:
            tags["node_id"] = self.node_id
        if self.trace_id is not None:
            tags["trace_id"] = self.trace_id
        for key, value in self.extra.items():
            if isinstance(value, str | int | float | bool):
                tags[key] = str(value)
        return tags
