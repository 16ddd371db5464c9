"""The event sink: each `penguiflow.observability.Event` updates the metrics it stands for.

Dispatch is one dictionary look-up on `family.name`; events nothing here is about cost
that look-up only. Updating a prometheus_client metric is a few lock-protected additions, so
the sink never awaits anything and never holds a producer up.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from weakref import WeakKeyDictionary

from penguiflow.observability import Event

from ._guard import DEFAULT_MAX_LABEL_VALUES
from ._metrics import Metrics

__all__ = ["PrometheusSink", "metrics_for"]

#: circuit breaker states as numbers (so an alert can say `== 2`)
_CIRCUIT = {"closed": 0.0, "half_open": 1.0, "half-open": 1.0, "open": 2.0}
_CIRCUIT_EVENTS = ("circuit_open", "circuit_closed", "circuit_half_open", "circuit_rejected")
#: session task states after which nothing changes (the gauge stops counting the task)
_FINAL_TASK_STATES = frozenset({"complete", "completed", "failed", "cancelled", "canceled"})
#: how many open pauses (and live session tasks) are remembered; the oldest go first
_REMEMBERED = 10_000

_lock = threading.Lock()
_by_registry: WeakKeyDictionary[Any, Metrics] = WeakKeyDictionary()


def metrics_for(registry: Any = None, *, max_label_values: int | None = None) -> Metrics:
    """The `Metrics` of `registry` (default: prometheus_client's global `REGISTRY`), made
    on first use. A registry refuses a metric name twice, so every sink of one registry shares
    them; `max_label_values` counts only when they are first made."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            limit = max_label_values if max_label_values is not None else DEFAULT_MAX_LABEL_VALUES
            metrics = Metrics(registry, max_label_values=limit)
            _by_registry[registry] = metrics
        return metrics


def _bounded_put(store: OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > _REMEMBERED:
        store.popitem(last=False)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _failed(event: Event) -> bool:
    status = event.attributes.get("status")
    if status is not None:
        return str(status).lower() not in ("ok", "success", "succeeded")
    return event.attributes.get("error") is not None


class PrometheusSink:
    """An event sink (`penguiflow.observability.EventSink`) feeding the PenguiFlow metrics of
    `registry` (default: prometheus_client's global `REGISTRY`).

    `max_label_values` caps the distinct values of each label of each metric (values past it
    count as "other"); `tenant_label` also counts LLM cost by tenant
    (`penguiflow_tenant_llm_cost_usd_total`), for deployments whose tenants are a bounded,
    known set."""

    def __init__(
        self,
        registry: Any = None,
        *,
        max_label_values: int = DEFAULT_MAX_LABEL_VALUES,
        tenant_label: bool = False,
    ) -> None:
        self.metrics = metrics_for(registry, max_label_values=max_label_values)
        self.registry = self.metrics.registry
        self.tenant_label = tenant_label
        self._paused_at: OrderedDict[str, float] = OrderedDict()
        self._task_states: OrderedDict[str, str] = OrderedDict()
        self._handlers: dict[str, Callable[[Event], None]] = {
            "flow.node_success": self._node_done,
            "flow.node_error": self._node_done,
            "flow.node_timeout": self._node_timeout,
            "flow.node_retry": self._node_retry,
            "flow.node_failed": self._node_failed,
            "flow.stream_stats": self._stream_stats,
            "flow.dead_letters": self._dead_letters,
            "flow.dead_letter": self._dead_lettered,
            "planner.run": self._planner_run,
            "planner.step": self._planner_step,
            "planner.finish": self._planner_finish,
            "planner.pause": self._planner_pause,
            "planner.resume": self._planner_resume,
            "tool.call": self._tool_call,
            "llm.call": self._llm_call,
            "session.task": self._session_task,
        }
        for name in _CIRCUIT_EVENTS:
            self._handlers[f"flow.{name}"] = self._circuit

    def __repr__(self) -> str:
        return f"PrometheusSink(registry={self.registry!r})"

    async def __call__(self, event: Event) -> None:
        self.handle(event)

    def handle(self, event: Event) -> None:
        """Update the metrics for `event` (synchronous: the sink's whole work)."""
        if event.family == "flow":
            self._queue_depth(event)
        handler = self._handlers.get(f"{event.family}.{event.name}")
        if handler is not None:
            handler(event)

    # -- nodes --------------------------------------------------------------------------------

    @staticmethod
    def _node(event: Event) -> dict[str, object]:
        return {"node": event.attributes.get("node_name") or "unknown"}

    def _queue_depth(self, event: Event) -> None:
        depth = event.measurements.get("queue_depth_in")
        if depth is not None and event.attributes.get("node_name"):
            self.metrics.set("penguiflow_node_queue_depth", depth, self._node(event))

    def _node_done(self, event: Event) -> None:
        if event.duration_ms is not None:
            seconds = event.duration_ms / 1000
            self.metrics.observe("penguiflow_node_duration_seconds", seconds, self._node(event))

    def _node_timeout(self, event: Event) -> None:
        self._node_done(event)
        self.metrics.inc("penguiflow_node_timeouts_total", self._node(event))

    def _node_retry(self, event: Event) -> None:
        self.metrics.inc("penguiflow_node_retries_total", self._node(event))

    def _node_failed(self, event: Event) -> None:
        extra = event.attributes.get("extra")
        code: object = None
        if isinstance(extra, Mapping):
            error = extra.get("flow_error")
            if isinstance(error, Mapping):
                code = error.get("code")
        code = event.attributes.get("code", code) or "NODE_EXCEPTION"
        labels = {**self._node(event), "code": code}
        self.metrics.inc("penguiflow_node_errors_total", labels)

    def _circuit(self, event: Event) -> None:
        extra = event.attributes.get("extra")
        state = extra.get("circuit_state") if isinstance(extra, Mapping) else None
        if state is None:  # the event's own name says it
            state = event.name.removeprefix("circuit_").replace("rejected", "open")
        value = _CIRCUIT.get(str(state))
        if value is not None:
            self.metrics.set("penguiflow_node_circuit_state", value, self._node(event))

    # -- the redis runtime --------------------------------------------------------------------

    @staticmethod
    def _stream(event: Event) -> dict[str, object]:
        return {
            "flow": event.attributes.get("flow") or "unknown",
            "stream": event.attributes.get("stream") or "unknown",
        }

    def _stream_stats(self, event: Event) -> None:
        labels = self._stream(event)
        for measurement, metric in (
            ("length", "penguiflow_redis_stream_length"),
            ("pending", "penguiflow_redis_pending_entries"),
            ("oldest_pending_age_s", "penguiflow_redis_oldest_pending_age_seconds"),
        ):
            value = event.measurements.get(measurement)
            if value is not None:
                self.metrics.set(metric, value, labels)

    def _dead_letters(self, event: Event) -> None:
        count = event.measurements.get("count")
        if count is not None:
            labels = {"flow": event.attributes.get("flow") or "unknown"}
            self.metrics.set("penguiflow_redis_dead_letters", count, labels)

    def _dead_lettered(self, event: Event) -> None:
        labels = {**self._stream(event), "reason": event.attributes.get("reason") or "unknown"}
        self.metrics.inc("penguiflow_redis_dead_lettered_total", labels)

    # -- planner --------------------------------------------------------------------------------

    def _planner_run(self, event: Event) -> None:
        if event.duration_ms is not None:
            seconds = event.duration_ms / 1000
            self.metrics.observe("penguiflow_planner_run_duration_seconds", seconds)
        hops = event.measurements.get("hops")
        if hops is None:
            hops = _number(event.attributes.get("hops"))
        if hops is not None:
            self.metrics.observe("penguiflow_planner_hops", hops)

    def _planner_step(self, event: Event) -> None:
        self.metrics.inc("penguiflow_planner_steps_total")

    def _planner_finish(self, event: Event) -> None:
        # The precise reason (max_iters, deadline...) when the event has it, else the public
        # one (budget_exhausted): both are small fixed sets.
        attributes = event.attributes
        reason = attributes.get("finish_reason") or attributes.get("reason") or "unknown"
        self.metrics.inc("penguiflow_planner_finishes_total", {"reason": reason})

    @staticmethod
    def _pause_key(event: Event) -> str | None:
        ref = event.attributes.get("pause_ref")
        if ref:
            return f"ref:{ref}"
        return f"trace:{event.trace_id}" if event.trace_id else None

    def _planner_pause(self, event: Event) -> None:
        reason = event.attributes.get("reason") or "unknown"
        self.metrics.inc("penguiflow_planner_pauses_total", {"reason": reason})
        key = self._pause_key(event)
        if key is not None:
            _bounded_put(self._paused_at, key, event.ts)

    def _planner_resume(self, event: Event) -> None:
        self.metrics.inc("penguiflow_planner_resumes_total")
        paused_ms = event.measurements.get("paused_ms")
        key = self._pause_key(event)
        paused_at = self._paused_at.pop(key, None) if key is not None else None
        if paused_ms is not None:
            waited: float | None = paused_ms / 1000
        elif paused_at is not None:
            # A pause seen by this process: the resume's start minus the pause's.
            waited = max(event.ts - paused_at, 0.0)
        else:
            waited = None  # paused in another process that did not say for how long
        if waited is not None:
            self.metrics.observe("penguiflow_planner_resume_latency_seconds", waited)

    # -- tools and LLM calls --------------------------------------------------------------------

    def _tool_call(self, event: Event) -> None:
        labels = {"tool": event.attributes.get("tool") or "unknown"}
        self.metrics.inc("penguiflow_tool_calls_total", labels)
        if _failed(event):
            self.metrics.inc("penguiflow_tool_errors_total", labels)
        if event.duration_ms is not None:
            seconds = event.duration_ms / 1000
            self.metrics.observe("penguiflow_tool_duration_seconds", seconds, labels)

    def _llm_call(self, event: Event) -> None:
        attributes = event.attributes
        model = (
            attributes.get("gen_ai.request.model")
            or attributes.get("gen_ai.response.model")
            or attributes.get("model")
            or "unknown"
        )
        labels = {"model": model}
        metrics = self.metrics
        if event.duration_ms is not None:
            seconds = event.duration_ms / 1000
            metrics.observe("penguiflow_llm_request_duration_seconds", seconds, labels)
        if _failed(event):
            metrics.inc("penguiflow_llm_errors_total", labels)
        retries = event.measurements.get("retries")
        if retries is None:
            retries = _number(attributes.get("retries"))
        if retries:
            metrics.inc("penguiflow_llm_retries_total", labels, retries)
        measurements = event.measurements
        for measurement, metric in (
            ("input_tokens", "penguiflow_llm_input_tokens_total"),
            ("output_tokens", "penguiflow_llm_output_tokens_total"),
            ("cache_read_tokens", "penguiflow_llm_cache_read_tokens_total"),
            ("cost_usd", "penguiflow_llm_cost_usd_total"),
        ):
            value = measurements.get(measurement)
            if value:
                metrics.inc(metric, labels, value)
        reasons = attributes.get("gen_ai.response.finish_reasons")
        if isinstance(reasons, str):
            reasons = (reasons,)
        if isinstance(reasons, list | tuple):
            for reason in reasons:
                metrics.inc("penguiflow_llm_finishes_total", {**labels, "reason": reason})
        cost = measurements.get("cost_usd")
        if self.tenant_label and cost:
            tenant = event.tenant or "unknown"
            metrics.inc("penguiflow_tenant_llm_cost_usd_total", {"tenant": tenant}, cost)

    # -- sessions -----------------------------------------------------------------------------

    def _session_task(self, event: Event) -> None:
        state_value = event.attributes.get("state")
        if not state_value:
            return
        state = str(getattr(state_value, "value", state_value)).lower()
        self.metrics.inc("penguiflow_session_task_transitions_total", {"state": state})
        task_id = event.attributes.get("task_id")
        if not task_id:
            return
        key = str(task_id)
        before = self._task_states.pop(key, None)
        if before == state:  # the same state reported again: nothing moved
            if state not in _FINAL_TASK_STATES:
                _bounded_put(self._task_states, key, state)
            return
        if before is not None:
            self.metrics.add("penguiflow_session_tasks", -1, {"state": before})
        if state in _FINAL_TASK_STATES:
            return  # ended: counted by the transitions counter, no longer live
        self.metrics.add("penguiflow_session_tasks", 1, {"state": state})
        _bounded_put(self._task_states, key, state)
