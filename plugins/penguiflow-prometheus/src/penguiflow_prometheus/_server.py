"""The `/metrics` endpoint: prometheus_client's HTTP server, bound to loopback by default.

The server runs in a daemon thread of its own (prometheus_client's), so a scrape never waits
for the event loop and a busy loop never makes a scrape time out. It binds 127.0.0.1 unless
told otherwise: metrics name nodes, tools and models, which is nobody else's business unless
the operator opens it up (`host="0.0.0.0"` behind a firewall, or a reverse proxy).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from penguiflow.errors import ConfigurationError, describe_exception
from penguiflow.resources import AsyncResource

__all__ = ["MetricsServer", "start_metrics_server"]


class MetricsServer(AsyncResource):
    """A running `/metrics` endpoint (`url`); `aclose()` stops it (idempotent)."""

    def __init__(self, server: Any, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        #: the port it listens on (the one the kernel picked, when asked for port 0)
        self.port: int = int(server.server_port)
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving"
        return f"MetricsServer({self.url!r}, {state})"

    def close(self) -> None:
        """Stop serving, from synchronous code (an atexit handler, say)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    async def aclose(self) -> None:
        # shutdown() waits for the serving loop's next poll (up to half a second): off the loop.
        await asyncio.to_thread(self.close)


def start_metrics_server(
    port: int = 0, *, host: str = "127.0.0.1", registry: Any = None
) -> MetricsServer:
    """Serve `registry` (default: prometheus_client's global `REGISTRY`, where the plugin's
    sink records) at `http://host:port/metrics`; port 0 picks a free port (see `.port`).

    Raises `ConfigurationError` when the port is taken or invalid, naming it."""
    from prometheus_client import REGISTRY, start_http_server

    if not 0 <= port <= 65535:
        raise ConfigurationError(f"metrics port must be between 0 and 65535, got {port}")
    try:
        server, thread = start_http_server(
            port, addr=host, registry=registry if registry is not None else REGISTRY
        )
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve Prometheus metrics on {host}:{port}: {describe_exception(exc)}; "
            "choose a free port (PENGUIFLOW_PROMETHEUS_PORT, or port 0 for any free one)"
        ) from exc
    return MetricsServer(server, thread, host)
