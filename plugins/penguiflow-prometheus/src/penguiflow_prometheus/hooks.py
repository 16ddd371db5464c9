"""Hook implementations, registered through the `penguiflow` entry-point group.

Installing the plugin is enough: every event of the process then updates the metrics in
prometheus_client's global registry. With a port configured (`PENGUIFLOW_PROMETHEUS_PORT` or
`[prometheus] port`), the process also serves them at `http://127.0.0.1:<port>/metrics`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from penguiflow.errors import ConfigurationError
from penguiflow.hookspecs import hookimpl
from penguiflow.observability import EventSink

from ._server import MetricsServer, start_metrics_server
from ._settings import PrometheusSettings
from ._sink import PrometheusSink

__all__ = ["penguiflow_event_sinks", "served"]

logger = logging.getLogger("penguiflow_prometheus")

_lock = threading.Lock()
#: the endpoint this process serves from the configuration, by the (host, ports) asked for:
#: the hook runs again after every `reset_hooks`, and must not start a second server
_servers: dict[tuple[str, tuple[int, ...]], MetricsServer | None] = {}


def served() -> list[MetricsServer]:
    """The endpoints the hook started in this process (for diagnostics and tests)."""
    with _lock:
        return [server for server in _servers.values() if server is not None]


def _serve(settings: PrometheusSettings) -> None:
    key = (settings.host, settings.ports)
    with _lock:
        if not settings.ports or key in _servers:
            return
        server: MetricsServer | None = None
        errors: list[str] = []
        for port in settings.ports:
            try:
                server = start_metrics_server(port, host=settings.host)
                break
            except ConfigurationError as exc:
                errors.append(str(exc))
        _servers[key] = server
    if server is None:
        # Metrics are still recorded (a registry served by the application works); a taken
        # port must not stop a worker from working.
        logger.error(
            "penguiflow-prometheus could not serve /metrics: %s; give each process a port of "
            "its own, or a range (PENGUIFLOW_PROMETHEUS_PORT=9464-9473)",
            "; ".join(errors),
        )
    else:
        logger.info("penguiflow-prometheus serves %s", server.url)


@hookimpl
def penguiflow_event_sinks(config: dict[str, Any]) -> list[EventSink]:
    """One `PrometheusSink` on the global registry; the endpoint when a port is set."""
    settings = PrometheusSettings.read(config, os.environ)
    sink = PrometheusSink(
        max_label_values=settings.max_label_values, tenant_label=settings.tenant_label
    )
    _serve(settings)
    return [sink]
