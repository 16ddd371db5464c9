"""The metrics PenguiFlow exports to Prometheus: one table (`METRICS`), made in a registry.

Names follow Prometheus conventions (`penguiflow_` prefix, the unit in the name, `_total` on
counters). Labels are bounded by design (node, flow, model, tool, reason, code, state,
stream): never trace, span or session ids, and every label goes through the cardinality guard
(`_guard.LabelGuard`). docs/observability.md lists the same table; a test keeps them in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._guard import LabelGuard

__all__ = ["METRICS", "MetricSpec", "Metrics"]

Kind = Literal["counter", "gauge", "histogram"]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LLM_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
#: a pause waits for a person: seconds to a day
_RESUME_SECONDS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
_HOPS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric: its full name (counters end in `_total`), kind, help and labels."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None


METRICS: tuple[MetricSpec, ...] = (
    # -- nodes (flow events) --------------------------------------------------------------------
    MetricSpec(
        "penguiflow_node_duration_seconds",
        "histogram",
        "Time one node invocation took (every attempt: success, error or timeout).",
        ("node",),
        _SECONDS,
    ),
    MetricSpec(
        "penguiflow_node_errors_total",
        "counter",
        "Messages a node failed for good (after its retries), by FlowErrorCode.",
        ("node", "code"),
    ),
    MetricSpec("penguiflow_node_retries_total", "counter", "Node attempts retried.", ("node",)),
    MetricSpec(
        "penguiflow_node_timeouts_total", "counter", "Node attempts that timed out.", ("node",)
    ),
    MetricSpec(
        "penguiflow_node_circuit_state",
        "gauge",
        "Circuit breaker state of a node: 0 closed, 1 half-open, 2 open.",
        ("node",),
    ),
    MetricSpec(
        "penguiflow_node_queue_depth",
        "gauge",
        "Messages waiting in a node's input queue, as last reported by its events.",
        ("node",),
    ),
    # -- the redis runtime ----------------------------------------------------------------------
    MetricSpec(
        "penguiflow_redis_stream_length",
        "gauge",
        "Entries in a node's input stream (its backlog: queued and in progress).",
        ("flow", "stream"),
    ),
    MetricSpec(
        "penguiflow_redis_pending_entries",
        "gauge",
        "Entries of a node's stream delivered to a worker and not yet acknowledged.",
        ("flow", "stream"),
    ),
    MetricSpec(
        "penguiflow_redis_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest pending entry of a node's stream (0 when none is pending).",
        ("flow", "stream"),
    ),
    MetricSpec(
        "penguiflow_redis_dead_letters",
        "gauge",
        "Entries in a flow's dead-letter stream.",
        ("flow",),
    ),
    MetricSpec(
        "penguiflow_redis_dead_lettered_total",
        "counter",
        "Entries this process moved to the dead letters, by the node stream they came from.",
        ("flow", "stream", "reason"),
    ),
    # -- planner ----------------------------------------------------------------------------------
    MetricSpec(
        "penguiflow_planner_finishes_total",
        "counter",
        "Planner runs finished, by reason (answer_complete, no_path, budget_exhausted...).",
        ("reason",),
    ),
    MetricSpec(
        "penguiflow_planner_run_duration_seconds",
        "histogram",
        "Time one planner run took.",
        (),
        _LLM_SECONDS,
    ),
    MetricSpec("penguiflow_planner_steps_total", "counter", "Planner steps taken."),
    MetricSpec(
        "penguiflow_planner_hops",
        "histogram",
        "Tool calls (hops) one planner run used.",
        (),
        _HOPS,
    ),
    MetricSpec(
        "penguiflow_planner_pauses_total",
        "counter",
        "Planner runs paused (approval, await_input...), by reason.",
        ("reason",),
    ),
    MetricSpec("penguiflow_planner_resumes_total", "counter", "Paused planner runs resumed."),
    MetricSpec(
        "penguiflow_planner_resume_latency_seconds",
        "histogram",
        "Time from a planner pause to its resume.",
        (),
        _RESUME_SECONDS,
    ),
    # -- tools ------------------------------------------------------------------------------------
    MetricSpec("penguiflow_tool_calls_total", "counter", "Tool calls, by tool.", ("tool",)),
    MetricSpec(
        "penguiflow_tool_errors_total", "counter", "Tool calls that failed, by tool.", ("tool",)
    ),
    MetricSpec(
        "penguiflow_tool_duration_seconds",
        "histogram",
        "Time one tool call took.",
        ("tool",),
        _SECONDS,
    ),
    # -- LLM calls --------------------------------------------------------------------------------
    MetricSpec(
        "penguiflow_llm_request_duration_seconds",
        "histogram",
        "Time one LLM request took (retries included).",
        ("model",),
        _LLM_SECONDS,
    ),
    MetricSpec("penguiflow_llm_errors_total", "counter", "LLM requests that failed.", ("model",)),
    MetricSpec(
        "penguiflow_llm_retries_total",
        "counter",
        "Retries LLM requests needed (rate limits, server errors, timeouts).",
        ("model",),
    ),
    MetricSpec("penguiflow_llm_input_tokens_total", "counter", "Prompt tokens sent.", ("model",)),
    MetricSpec(
        "penguiflow_llm_output_tokens_total", "counter", "Completion tokens received.", ("model",)
    ),
    MetricSpec(
        "penguiflow_llm_cache_read_tokens_total",
        "counter",
        "Prompt tokens served from the provider's prompt cache.",
        ("model",),
    ),
    MetricSpec(
        "penguiflow_llm_cost_usd_total", "counter", "Cost of LLM requests in USD.", ("model",)
    ),
    MetricSpec(
        "penguiflow_llm_finishes_total",
        "counter",
        "LLM responses by finish reason (stop, length, tool_calls, content_filter...).",
        ("model", "reason"),
    ),
    MetricSpec(
        "penguiflow_tenant_llm_cost_usd_total",
        "counter",
        "Cost of LLM requests in USD by tenant (only with tenant_label on: tenants must be "
        "a bounded set).",
        ("tenant",),
    ),
    # -- sessions ---------------------------------------------------------------------------------
    MetricSpec(
        "penguiflow_session_task_transitions_total",
        "counter",
        "Session tasks that entered a state (pending, running, paused, complete, failed...).",
        ("state",),
    ),
    MetricSpec(
        "penguiflow_session_tasks",
        "gauge",
        "Session tasks this process saw, by their current state.",
        ("state",),
    ),
    # -- the exporter itself ----------------------------------------------------------------------
    MetricSpec(
        "penguiflow_prometheus_label_overflow_total",
        "counter",
        "Label values reported as 'other' because a metric reached max_label_values.",
        ("metric",),
    ),
)


class _Family:
    """One metric and the guard of its labels."""

    __slots__ = ("guard", "labels", "metric", "spec")

    def __init__(self, spec: MetricSpec, metric: Any, guard: LabelGuard) -> None:
        self.spec = spec
        self.metric = metric
        self.guard = guard
        self.labels = spec.labels

    def child(self, values: Mapping[str, object]) -> Any:
        if not self.labels:
            return self.metric
        admitted = {label: self.guard.admit(label, values.get(label)) for label in self.labels}
        return self.metric.labels(**admitted)


class Metrics:
    """Every metric of `METRICS`, registered in `registry`.

    A registry accepts a name once, so there is one `Metrics` per registry
    (`metrics_for(registry)` in the sink module keeps them)."""

    def __init__(self, registry: Any, *, max_label_values: int) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.registry = registry
        self.max_label_values = max_label_values
        self._families: dict[str, _Family] = {}
        for spec in METRICS:
            metric: Any
            # prometheus_client adds `_total` to a counter's samples itself.
            if spec.kind == "counter":
                base = spec.name.removesuffix("_total")
                metric = Counter(base, spec.help, spec.labels, registry=registry)
            elif spec.kind == "gauge":
                metric = Gauge(spec.name, spec.help, spec.labels, registry=registry)
            else:
                metric = Histogram(
                    spec.name,
                    spec.help,
                    spec.labels,
                    registry=registry,
                    buckets=spec.buckets or Histogram.DEFAULT_BUCKETS,
                )
            guard = LabelGuard(spec.name, spec.labels, max_label_values, self._overflowed)
            self._families[spec.name] = _Family(spec, metric, guard)

    def _overflowed(self, metric: str) -> None:
        # The overflow counter's own label is the metric name: bounded by METRICS.
        overflow = self._families["penguiflow_prometheus_label_overflow_total"]
        overflow.metric.labels(metric=metric).inc()

    def family(self, name: str) -> _Family:
        return self._families[name]

    def inc(
        self, name: str, labels: Mapping[str, object] | None = None, amount: float = 1.0
    ) -> None:
        if amount < 0:  # a counter only goes up; a negative report is a producer's bug
            return
        self._families[name].child(labels or {}).inc(amount)

    def set(self, name: str, value: float, labels: Mapping[str, object] | None = None) -> None:
        self._families[name].child(labels or {}).set(value)

    def add(self, name: str, amount: float, labels: Mapping[str, object] | None = None) -> None:
        """Move a gauge by `amount` (up or down)."""
        self._families[name].child(labels or {}).inc(amount)

    def observe(self, name: str, value: float, labels: Mapping[str, object] | None = None) -> None:
        self._families[name].child(labels or {}).observe(value)
