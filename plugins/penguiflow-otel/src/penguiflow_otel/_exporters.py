"""Which OpenTelemetry exporters the standard `OTEL_*` variables ask for.

The SDK registers its exporters as entry points (`opentelemetry_traces_exporter`,
`opentelemetry_metrics_exporter`: `console`, `otlp_proto_http`, `otlp_proto_grpc` when the
gRPC exporter is installed...). `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` name them
(comma-separated, default `otlp`, `none` for nothing); `otlp` means the protocol that
`OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL` names. The SDK's own
selection of these lives in a private module (`opentelemetry.sdk._configuration`) that also
installs global providers, which a library must not do behind an application's back; this
module applies the same rules to entry points, the public way.

One difference, on purpose: with no protocol set, `otlp` is `http/protobuf` (the
OpenTelemetry specification's default, and the exporter this plugin depends on), where the
Python SDK's auto-configuration picks gRPC.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Literal

from penguiflow.errors import ConfigurationError

__all__ = ["OTelConfigError", "exporter_names", "load_exporters"]

Signal = Literal["traces", "metrics"]

_GROUPS: dict[Signal, str] = {
    "traces": "opentelemetry_traces_exporter",
    "metrics": "opentelemetry_metrics_exporter",
}
_PROTOCOLS = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
_PACKAGES = {
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
}


class OTelConfigError(ConfigurationError):
    """The `OTEL_*` configuration names an exporter or protocol that is not available."""


def _protocol(signal: Signal, environ: Mapping[str, str]) -> str:
    value = (
        environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if value not in _PROTOCOLS:
        raise OTelConfigError(
            f"unsupported OTLP protocol {value!r} for {signal}; set "
            f"OTEL_EXPORTER_OTLP_PROTOCOL to one of {', '.join(sorted(_PROTOCOLS))}"
        )
    return _PROTOCOLS[value]


def exporter_names(signal: Signal, environ: Mapping[str, str] | None = None) -> list[str]:
    """The entry-point names of the exporters `OTEL_<SIGNAL>_EXPORTER` asks for, in order,
    without repeats; empty for `none`."""
    environ = os.environ if environ is None else environ
    raw = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp")
    names: list[str] = []
    for part in raw.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name == "none":
            return []
        if name == "otlp":
            name = _protocol(signal, environ)
        if name not in names:
            names.append(name)
    return names


def load_exporters(signal: Signal, environ: Mapping[str, str] | None = None) -> list[object]:
    """One instance of each exporter `OTEL_<SIGNAL>_EXPORTER` asks for, built with no
    arguments so that each reads its own `OTEL_EXPORTER_*` settings (endpoint, headers,
    timeout, compression)."""
    names = exporter_names(signal, environ)
    if not names:
        return []
    found = {ep.name: ep for ep in entry_points(group=_GROUPS[signal])}
    exporters: list[object] = []
    for name in names:
        entry_point = found.get(name)
        if entry_point is None:
            package = _PACKAGES.get(name)
            how = f"install it with `pip install {package}`" if package else "check the name"
            raise OTelConfigError(
                f"OTEL_{signal.upper()}_EXPORTER asks for the {signal} exporter {name!r}, which "
                f"is not installed (installed: {', '.join(sorted(found)) or 'none'}); {how}, "
                f"or set OTEL_{signal.upper()}_EXPORTER=none"
            )
        exporters.append(entry_point.load()())
    return exporters
