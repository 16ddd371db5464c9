"""Middlewares: async observers of every `FlowEvent` (logging, metrics, tracing)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from .metrics import FlowEvent

__all__ = ["LatencyCallback", "Middleware", "log_flow_events"]

LatencyCallback = Callable[[str, float, FlowEvent], None]


class Middleware(Protocol):
    """Awaited inline for every event; exceptions are logged and never break the flow."""

    async def __call__(self, event: FlowEvent) -> None: ...


def log_flow_events(
    logger: logging.Logger | None = None,
    *,
    start_level: int = logging.INFO,
    success_level: int = logging.INFO,
    error_level: int = logging.ERROR,
    latency_callback: LatencyCallback | None = None,
) -> Middleware:
    """Log `node_start`, `node_success` and `node_error`, optionally reporting latencies."""
    log = logger or logging.getLogger("penguiflow.flow")
    levels = {"node_start": start_level, "node_success": success_level, "node_error": error_level}

    async def middleware(event: FlowEvent) -> None:
        level = levels.get(event.event_type)
        if level is None:
            return
        payload = event.to_payload()
        if event.event_type == "node_error" and event.error_payload is not None:
            payload["error_payload"] = dict(event.error_payload)
        log.log(level, event.event_type, extra=payload)
        if latency_callback is None or event.event_type == "node_start":
            return
        if event.latency_ms is None:
            return
        try:
            latency_callback(event.event_type, float(event.latency_ms), event)
        except Exception:
            # PenguiFlow's record shape: `event` names what this record reports (the failed
            # callback), as in every other record; node and trace ids say where it happened.
            log.exception(
                "log_flow_events_latency_callback_error",
                extra={
                    "event": "log_flow_events_latency_callback_error",
                    "node_name": event.node_name,
                    "node_id": event.node_id,
                    "trace_id": event.trace_id,
                },
            )

    return middleware
