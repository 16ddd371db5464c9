"""The plugin's hook: UTCP manuals from configuration become connectors.

`config["utcp"]["manuals"]` (the `[utcp]` section of the host's configuration) lists manuals
as `{"name": ..., "url": ...}` (an HTTP manual, optionally with `http_method` and `headers`)
or `{"name": ..., "call_template": {...}}`. Either form takes `allowed_hosts` (hosts other
than the manual's own its tools may call) and `allowed_variables` (the `${NAME}`s its tools
may be given), as `UTCPConnector` does. Every entry is checked before any connector is
registered, so a bad one registers nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from penguiflow.errors import ConfigurationError
from penguiflow.hookspecs import hookimpl

from .connector import UTCPConnector

__all__ = ["penguiflow_register_connectors"]


@hookimpl
def penguiflow_register_connectors(
    register: Callable[[UTCPConnector], None], config: dict[str, Any]
) -> None:
    section = config.get("utcp") if isinstance(config, dict) else None
    entries = section.get("manuals", []) if isinstance(section, dict) else []
    connectors: list[UTCPConnector] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigurationError(
                f"utcp.manuals[{index}] needs a name and a url or call_template"
            )
        policy = {
            "allowed_hosts": entry.get("allowed_hosts", ()),
            "allowed_variables": entry.get("allowed_variables", ()),
        }
        if "call_template" in entry:
            connectors.append(UTCPConnector(entry["name"], entry["call_template"], **policy))
        elif "url" in entry:
            connectors.append(
                UTCPConnector.http(
                    entry["name"],
                    entry["url"],
                    http_method=entry.get("http_method", "GET"),
                    headers=entry.get("headers"),
                    **policy,
                )
            )
        else:
            raise ConfigurationError(
                f"utcp manual {entry['name']!r} needs url= (an HTTP manual) or call_template="
            )
    for connector in connectors:
        register(connector)
