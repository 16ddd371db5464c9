"""The plugin's settings: the `[prometheus]` configuration section, then the environment.

Environment variables win over the file, as a deployment's settings should:
`PENGUIFLOW_PROMETHEUS_PORT` (a port, or a range `9464-9473` from which each process takes
the first free one: several workers on one machine), `PENGUIFLOW_PROMETHEUS_HOST`,
`PENGUIFLOW_PROMETHEUS_MAX_LABEL_VALUES`, `PENGUIFLOW_PROMETHEUS_TENANT_LABEL`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from penguiflow.plugins import PluginConfigError

from ._guard import DEFAULT_MAX_LABEL_VALUES

__all__ = ["ENV_PREFIX", "PrometheusSettings"]

ENV_PREFIX = "PENGUIFLOW_PROMETHEUS_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """`ports`: where to serve /metrics (empty: not served; the first free one is taken);
    `host`: the address to bind; `max_label_values`: the cardinality cap; `tenant_label`:
    count LLM cost by tenant too."""

    ports: tuple[int, ...] = ()
    host: str = "127.0.0.1"
    max_label_values: int = DEFAULT_MAX_LABEL_VALUES
    tenant_label: bool = False

    @classmethod
    def read(
        cls, config: Mapping[str, Any] | None, environ: Mapping[str, str]
    ) -> PrometheusSettings:
        section = (config or {}).get("prometheus") or {}
        if not isinstance(section, Mapping):
            raise PluginConfigError(
                f"the [prometheus] configuration section must be a table, got "
                f"{type(section).__name__}"
            )
        merged: dict[str, Any] = dict(section)
        for key in ("port", "host", "max_label_values", "tenant_label"):
            value = environ.get(ENV_PREFIX + key.upper())
            if value is not None:
                merged[key] = value
        unknown = sorted(set(merged) - {"port", "host", "max_label_values", "tenant_label"})
        if unknown:
            raise PluginConfigError(
                f"unknown [prometheus] setting(s) {', '.join(unknown)}; the settings are "
                "port, host, max_label_values and tenant_label"
            )
        limit = _integer(
            merged.get("max_label_values", DEFAULT_MAX_LABEL_VALUES), "max_label_values"
        )
        if limit < 1:
            raise PluginConfigError(
                f"max_label_values must be at least 1, got {limit} "
                f"({ENV_PREFIX}MAX_LABEL_VALUES or [prometheus] max_label_values)"
            )
        return cls(
            ports=_ports(merged.get("port")),
            host=str(merged.get("host") or "127.0.0.1"),
            max_label_values=limit,
            tenant_label=_flag(merged.get("tenant_label", False)),
        )


def _integer(value: object, name: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise PluginConfigError(
            f"{name} must be an integer, got {value!r} ({ENV_PREFIX}{name.upper()} or "
            f"[prometheus] {name})"
        ) from None


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise PluginConfigError(
        f"tenant_label must be true or false, got {value!r} ({ENV_PREFIX}TENANT_LABEL or "
        "[prometheus] tenant_label)"
    )


def _ports(value: object) -> tuple[int, ...]:
    """'' or None: none; '9464': that one; '9464-9473': each in turn; 0: any free one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    text = str(value).strip()
    first, dash, last = text.partition("-")
    low = _integer(first, "port")
    high = _integer(last, "port") if dash else low
    if not (0 <= low <= high <= 65535):
        raise PluginConfigError(
            f"port must be a port (0 for any free one) or a range such as 9464-9473, got "
            f"{text!r} ({ENV_PREFIX}PORT or [prometheus] port)"
        )
    return tuple(range(low, high + 1))
