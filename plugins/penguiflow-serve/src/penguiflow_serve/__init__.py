"""What PenguiFlow's serving commands share: the target, the socket, the server, logging
(`--log-level`, `--log-format`), the health routes and the trace context of requests.

A library for plugins that add a command serving an ASGI app (`penguiflow a2a serve`,
`penguiflow serve-session`). Import it when the command runs, not at module level of the
command's entry point: it imports click at once, uvicorn only when serving."""

from __future__ import annotations

from ._health import health_routes
from ._logging import LOG_FORMATS, LOG_LEVELS, configure_logging
from ._server import serve_app
from ._socket import bind_socket, display_url
from ._target import load_target, resolve_target
from ._tracing import TraceContextMiddleware

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "TraceContextMiddleware",
    "bind_socket",
    "configure_logging",
    "display_url",
    "health_routes",
    "load_target",
    "resolve_target",
    "serve_app",
]
