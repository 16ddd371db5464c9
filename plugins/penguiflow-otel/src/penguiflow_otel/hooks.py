"""The plugin's hooks (entry point `penguiflow-otel` in the `penguiflow` group).

Loading this module imports no OpenTelemetry code: the SDK is imported when the hook host
asks for event sinks, which happens once per process (again after `reset_hooks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from penguiflow.hookspecs import hookimpl

if TYPE_CHECKING:
    from penguiflow.observability import EventSink

__all__ = ["penguiflow_event_sinks"]


@hookimpl
def penguiflow_event_sinks(config: dict[str, Any]) -> list[EventSink]:
    """The process's `OTelSink` (see `penguiflow_otel.default_sink`), or nothing when
    `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER` and `OTEL_METRICS_EXPORTER` are both
    `none`."""
    from ._sink import default_sink

    sink = default_sink(config)
    return [sink] if sink is not None else []
