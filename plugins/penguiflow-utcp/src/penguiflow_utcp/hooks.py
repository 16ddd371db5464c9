"""The plugin's hook: UTCP manuals from configuration become connectors.

`config["utcp"]["manuals"]` lists manuals as `{"name": ..., "url": ...}` (an HTTP manual,
optionally with `http_method` and `headers`) or `{"name": ..., "call_template": {...}}`.
"""

from __future__ import annotations

from typing import Any

from penguiflow.hookspecs import hookimpl

from .connector import UTCPConnector

__all__ = ["penguiflow_register_connectors"]


@hookimpl
def penguiflow_register_connectors(config: dict[str, Any]) -> list[Any]:
    section = config.get("utcp") if isinstance(config, dict) else None
    entries = section.get("manuals", []) if isinstance(section, dict) else []
    connectors: list[Any] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"utcp.manuals[{index}] needs a name and a url or call_template")
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
            raise ValueError(
                f"utcp manual {entry['name']!r} needs url= (an HTTP manual) or call_template="
            )
    return connectors
