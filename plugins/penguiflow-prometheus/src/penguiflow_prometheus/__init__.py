"""Prometheus metrics for PenguiFlow.

Installed, the plugin's `penguiflow_event_sinks` hook turns every
`penguiflow.observability.Event` of the process into prometheus_client metrics (node latency,
errors by code, retries, circuit state, queue depth, planner finishes by reason, hops, LLM
tokens, cost and latency by model, tool calls and errors, pauses and resume latency, session
task states, the redis runtime's backlog, pending entries and dead letters), in
prometheus_client's global registry.

- `PENGUIFLOW_PROMETHEUS_PORT=9464` (or `[prometheus] port`) serves them at
  `http://127.0.0.1:9464/metrics`; `start_metrics_server(port)` does it from code.
- An application that serves its own `/metrics` already exports them (the global
  registry), or records into a registry of its own with `PrometheusSink(registry)` added
  with `penguiflow.observability.add_event_sink`.
- Labels are bounded: each label of each metric takes at most `max_label_values` distinct
  values (default `DEFAULT_MAX_LABEL_VALUES`); later values are counted as `OTHER`.

The metric table, alert rules and dashboard suggestions are in docs/observability.md.
"""

from __future__ import annotations

from ._guard import DEFAULT_MAX_LABEL_VALUES, OTHER, LabelGuard
from ._metrics import METRICS, MetricSpec
from ._server import MetricsServer, start_metrics_server
from ._settings import PrometheusSettings
from ._sink import PrometheusSink

__all__ = [
    "DEFAULT_MAX_LABEL_VALUES",
    "METRICS",
    "OTHER",
    "LabelGuard",
    "MetricSpec",
    "MetricsServer",
    "PrometheusSettings",
    "PrometheusSink",
    "start_metrics_server",
]
