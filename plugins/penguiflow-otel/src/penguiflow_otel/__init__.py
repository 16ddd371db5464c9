"""OpenTelemetry for PenguiFlow: every `penguiflow.observability.Event` as spans (with the
kernel's own trace and span ids) and metrics, configured by the standard `OTEL_*` variables.

Installing the package is enough: its `penguiflow_event_sinks` hook contributes the sink.
Names load on first use, so the hook plugin imports no OpenTelemetry code until a sink is
needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._exporters import OTelConfigError, exporter_names
    from ._metrics import METRIC_NAMES
    from ._sink import (
        DEFAULT_SHUTDOWN_TIMEOUT_S,
        SCOPE,
        SHUTDOWN_TIMEOUT_ENV,
        OTelSink,
        default_sink,
        sdk_disabled,
        shutdown,
        shutdown_timeout_s,
    )
    from ._spans import span_attributes, span_kind, span_name

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT_S",
    "METRIC_NAMES",
    "SCOPE",
    "SHUTDOWN_TIMEOUT_ENV",
    "OTelConfigError",
    "OTelSink",
    "default_sink",
    "exporter_names",
    "sdk_disabled",
    "shutdown",
    "shutdown_timeout_s",
    "span_attributes",
    "span_kind",
    "span_name",
]

_HOMES = {
    "OTelConfigError": "._exporters",
    "exporter_names": "._exporters",
    "METRIC_NAMES": "._metrics",
    "SCOPE": "._sink",
    "OTelSink": "._sink",
    "default_sink": "._sink",
    "sdk_disabled": "._sink",
    "shutdown": "._sink",
    "shutdown_timeout_s": "._sink",
    "DEFAULT_SHUTDOWN_TIMEOUT_S": "._sink",
    "SHUTDOWN_TIMEOUT_ENV": "._sink",
    "span_attributes": "._spans",
    "span_kind": "._spans",
    "span_name": "._spans",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
