"""The plugin's hook: UTCP manuals from configuration become connectors.

`config["utcp"]["manuals"]` (the `[utcp]` section of the host's configuration) lists manuals
as `{"name": ..., "url": ...}` (an HTTP manual, optionally with `http_method` and `headers`)
or `{"name": ..., "call_template": {...}}`. Either form takes `allowed_hosts` (hosts other
than the manual's own its tools may call) and `allowed_variables` (the `${NAME}`s its tools
may be given), as `UTCPConnector` does. Every entry is checked before any connector is
registered, so a bad one registers nothing.

A connector registered here belongs to the flows that use it: when the last running flow
that called it stops, its UTCP client (and the HTTP client inside) is closed, and it fetches
the manual again if used later. Other flows' clients, and a connector used only outside
flows, stay open.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from penguiflow.errors import ConfigurationError
from penguiflow.hookspecs import hookimpl

from .connector import UTCPConnector

__all__ = [
    "penguiflow_flow_shutdown",
    "penguiflow_register_connectors",
]

#: the connectors this plugin registered: a stopping flow closes those it was the last to use
_made: weakref.WeakSet[UTCPConnector] = weakref.WeakSet()
#: closings in progress (held so the tasks are not collected before they finish)
_closing: set[asyncio.Task[None]] = set()


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
        _made.add(connector)
        register(connector)


@hookimpl
def penguiflow_flow_shutdown(flow: Any) -> None:
    """Close the clients of the connectors `flow` used and no other running flow uses.
    Hooks are synchronous, so each closing runs as a task on the flow's loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # stopped outside a loop: nothing of this loop's to close
        return
    for connector in list(_made):
        if connector.release_flow(flow):
            task = loop.create_task(connector.aclose())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
