"""Trace context on a served app: a request's `traceparent` becomes the current span.

A pure ASGI middleware, so the span is set in the task that runs the endpoint; tasks the
endpoint starts copy it, and what they run (a flow, a planner, a session turn) is part of the
caller's trace: `flow.emit` stamps it on the flow's messages, and their spans are children of
the caller's span.
"""

from __future__ import annotations

from typing import Any

from penguiflow.tracecontext import SpanContext, using_span

__all__ = ["TraceContextMiddleware"]


class TraceContextMiddleware:
    """Runs each HTTP request (and WebSocket connection) inside the span its `traceparent`
    header names; without one, or with a malformed one, as it would without this."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        span = None
        if scope.get("type") in ("http", "websocket"):
            for key, value in scope.get("headers") or ():
                if key.lower() == b"traceparent":
                    span = SpanContext.parse(value.decode("latin-1"))
                    break
        if span is None:
            await self.app(scope, receive, send)
            return
        with using_span(span):
            await self.app(scope, receive, send)
