"""The plugin's hook: UTCP manuals from configuration become connectors.

`config["utcp"]["manuals"]` (the `[utcp]` section of the host's configuration) lists manuals
as `{"name": ..., "url": ...}` (an HTTP manual, optionally with `http_method` and `headers`)
or `{"name": ..., "call_template": {...}}`. Every entry is checked before any connector is
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
        if "call_template" in entry:
            connectors.append(UTCPConnector(entry["name"], entry["call_template"]))
        elif "url" in entry:
            connectors.append(
                UTCPConnector.http(
                    entry["name"],
                    entry["url"],
                    http_method=entry.get("http_method", "GET"),
                    headers=entry.get("headers"),
                )
            )
        else:
            raise ConfigurationError(
                f"utcp manual {entry['name']!r} needs url= (an HTTP manual) or call_template="
            )
    for connector in connectors:
        register(connector)
