"""PenguiFlow `Event`s as OpenTelemetry metrics, through the metrics API (a `Meter`).

Every attribute used here is bounded: node, tool, connector, server, agent and model names,
statuses, reasons, states. Trace, span and session ids, tenants and free text never become
metric attributes (they are on spans). As a guard against a producer putting something
unbounded in one of those (a model name built from user input, say), each attribute keeps at
most `max_values` distinct values per instrument; the rest are recorded as "other".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import Meter

from penguiflow.observability import Event

__all__ = ["METRIC_NAMES", "OTHER", "EventMetrics"]

OTHER = "other"

#: every instrument this module creates: name -> (kind, unit, attributes)
METRIC_NAMES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "penguiflow.node.duration": ("histogram", "s", ("node", "outcome")),
    "penguiflow.node.retries": ("counter", "{retry}", ("node",)),
    "penguiflow.node.failures": ("counter", "{message}", ("node", "code")),
    "penguiflow.planner.finishes": ("counter", "{run}", ("reason",)),
    "penguiflow.planner.pauses": ("counter", "{run}", ("reason",)),
    "penguiflow.planner.run.duration": ("histogram", "s", ("reason", "status")),
    "penguiflow.tool.calls": ("counter", "{call}", ("tool", "status")),
    "penguiflow.tool.duration": ("histogram", "s", ("tool", "status")),
    "penguiflow.llm.tokens": ("counter", "{token}", ("model", "type")),
    "penguiflow.llm.cost": ("counter", "USD", ("model",)),
    "gen_ai.client.operation.duration": (
        "histogram",
        "s",
        ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.provider.name", "error.type"),
    ),
    "gen_ai.client.token.usage": (
        "histogram",
        "{token}",
        (
            "gen_ai.operation.name",
            "gen_ai.request.model",
            "gen_ai.provider.name",
            "gen_ai.token.type",
        ),
    ),
    "penguiflow.connector.calls": ("counter", "{call}", ("connector", "server", "tool", "status")),
    "penguiflow.remote.calls": ("counter", "{call}", ("agent", "status")),
    "penguiflow.session.tasks": ("counter", "{transition}", ("state", "kind")),
}

#: token measurements -> the `type` attribute of penguiflow.llm.tokens
_TOKENS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache_read",
    "cache_creation_tokens": "cache_creation",
}
#: the same, as the GenAI convention's gen_ai.token.type (it defines input and output only)
_GENAI_TOKEN_TYPES = {"input_tokens": "input", "output_tokens": "output"}


def _str(value: Any, default: str = "unknown") -> str:
    return default if value is None or value == "" else str(value)


def _status(event: Event) -> str:
    status = event.attributes.get("status")
    if status is not None:
        return str(status)
    return "error" if event.error is not None else "ok"


class _Bounded:
    """Distinct values per (instrument, attribute), capped; later newcomers become OTHER."""

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._seen: dict[tuple[str, str], set[str]] = {}

    def __call__(self, instrument: str, attributes: Mapping[str, str]) -> dict[str, str]:
        bounded: dict[str, str] = {}
        for key, value in attributes.items():
            seen = self._seen.setdefault((instrument, key), set())
            if value not in seen and len(seen) >= self.max_values:
                value = OTHER
            else:
                seen.add(value)
            bounded[key] = value
        return bounded


class EventMetrics:
    """Records each event into the instruments of `METRIC_NAMES` (created on `meter`)."""

    def __init__(self, meter: Meter, *, max_values: int = 200) -> None:
        self._bound = _Bounded(max_values)
        self._instruments: dict[str, Any] = {}
        for name, (kind, unit, _) in METRIC_NAMES.items():
            make = meter.create_histogram if kind == "histogram" else meter.create_counter
            self._instruments[name] = make(name, unit=unit)

    def _add(self, name: str, amount: float, **attributes: str) -> None:
        self._instruments[name].add(amount, self._bound(name, attributes))

    def _record(self, name: str, value: float, **attributes: str) -> None:
        self._instruments[name].record(value, self._bound(name, attributes))

    def record(self, event: Event) -> None:
        """Update the instruments `event` concerns (most events concern none)."""
        handler = getattr(self, f"_on_{event.family}", None)
        if handler is not None:
            handler(event)

    # -- one method per family ----------------------------------------------------------------

    def _on_flow(self, event: Event) -> None:
        attributes = event.attributes
        node = _str(attributes.get("node_name"))
        name = event.name
        if name in ("node_success", "node_error", "node_timeout"):
            if event.duration_ms is not None:
                outcome = {"node_success": "ok", "node_error": "error"}.get(name, "timeout")
                seconds = event.duration_ms / 1000
                self._record("penguiflow.node.duration", seconds, node=node, outcome=outcome)
        elif name == "node_retry":
            self._add("penguiflow.node.retries", 1, node=node)
        elif name == "node_failed":
            extra = attributes.get("extra")
            error = extra.get("flow_error") if isinstance(extra, Mapping) else None
            code = error.get("code") if isinstance(error, Mapping) else None
            self._add("penguiflow.node.failures", 1, node=node, code=_str(code))

    def _on_planner(self, event: Event) -> None:
        # Counted from the run's own event (once per run, with how it ended), not from the
        # `planner.finish` moment, which a resumed run and its first part would both count.
        if event.name != "run":
            return
        attributes = event.attributes
        reason = _str(attributes.get("reason"))
        outcome = attributes.get("outcome")
        if outcome == "finish":
            self._add("penguiflow.planner.finishes", 1, reason=reason)
        elif outcome == "pause":
            self._add("penguiflow.planner.pauses", 1, reason=reason)
        if event.duration_ms is not None:
            seconds = event.duration_ms / 1000
            status = _status(event)
            self._record("penguiflow.planner.run.duration", seconds, reason=reason, status=status)

    def _on_tool(self, event: Event) -> None:
        tool = _str(event.attributes.get("tool"))
        status = _status(event)
        self._add("penguiflow.tool.calls", 1, tool=tool, status=status)
        if event.duration_ms is not None:
            seconds = event.duration_ms / 1000
            self._record("penguiflow.tool.duration", seconds, tool=tool, status=status)

    def _on_llm(self, event: Event) -> None:
        attributes = event.attributes
        model = _str(
            attributes.get("gen_ai.request.model")
            or attributes.get("gen_ai.response.model")
            or attributes.get("model")
        )
        genai = {
            "gen_ai.operation.name": _str(attributes.get("gen_ai.operation.name"), "chat"),
            "gen_ai.request.model": model,
            "gen_ai.provider.name": _str(
                attributes.get("gen_ai.provider.name") or attributes.get("gen_ai.system")
            ),
        }
        measurements = event.measurements
        for key, kind in _TOKENS.items():
            if key in measurements:
                self._add("penguiflow.llm.tokens", measurements[key], model=model, type=kind)
        for key, kind in _GENAI_TOKEN_TYPES.items():
            if key in measurements:
                usage = {**genai, "gen_ai.token.type": kind}
                self._instruments["gen_ai.client.token.usage"].record(
                    measurements[key], self._bound("gen_ai.client.token.usage", usage)
                )
        if "cost_usd" in measurements:
            self._add("penguiflow.llm.cost", measurements["cost_usd"], model=model)
        if event.duration_ms is not None:
            duration = dict(genai)
            if _status(event) == "error":
                duration["error.type"] = _str(attributes.get("error_type"), "error")
            self._instruments["gen_ai.client.operation.duration"].record(
                event.duration_ms / 1000, self._bound("gen_ai.client.operation.duration", duration)
            )

    def _on_connector(self, event: Event) -> None:
        attributes = event.attributes
        self._add(
            "penguiflow.connector.calls",
            1,
            connector=_str(attributes.get("connector")),
            server=_str(attributes.get("server")),
            tool=_str(attributes.get("tool")),
            status=_status(event),
        )

    def _on_remote(self, event: Event) -> None:
        agent = _str(self._agent(event.attributes))
        self._add("penguiflow.remote.calls", 1, agent=agent, status=_status(event))

    @staticmethod
    def _agent(attributes: Mapping[str, Any]) -> Any:
        return attributes.get("agent") or attributes.get("url")

    def _on_session(self, event: Event) -> None:
        if event.name != "task":
            return
        attributes = event.attributes
        self._add(
            "penguiflow.session.tasks",
            1,
            state=_str(attributes.get("state")),
            kind=_str(attributes.get("kind")),
        )
