"""The plugin's hooks: MCP servers from configuration become connectors.

Servers come from the plugin configuration (`config["mcp"]["servers"]`, a list of server
declarations: the `[mcp]` section of the host's configuration) and from the file named by
`PENGUIFLOW_MCP_CONFIG`. A package can ship preconfigured servers by implementing
`penguiflow_register_connectors` the same way.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import Any

from penguiflow.hookspecs import hookimpl

from .config import CONFIG_ENV, MCPServerConfig, load_config
from .connector import MCPConnector

__all__ = [
    "penguiflow_flow_shutdown",
    "penguiflow_register_connectors",
]

#: connectors this plugin made; a stopping flow closes those it used and no other running
#: flow uses (they reconnect if used again)
_made: weakref.WeakSet[MCPConnector] = weakref.WeakSet()
_closing: set[asyncio.Task[None]] = set()


@hookimpl
def penguiflow_register_connectors(
    register: Callable[[MCPConnector], None], config: dict[str, Any]
) -> None:
    servers: list[MCPServerConfig] = []
    section = config.get("mcp") if isinstance(config, dict) else None
    if isinstance(section, dict) and section.get("servers"):
        servers += load_config({"servers": section["servers"]})
    path = os.environ.get(CONFIG_ENV)
    if path:
        servers += load_config(path)
    for server in servers:
        connector = MCPConnector(server)
        _made.add(connector)
        register(connector)


@hookimpl
def penguiflow_flow_shutdown(flow: Any) -> None:
    """Close the sessions `flow` used that no other running flow uses (hooks are
    synchronous, so the closing runs as tasks on the flow's loop). Sessions of other flows,
    and those opened outside any flow, stay open."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    for connector in list(_made):
        if not connector.release_flow(flow):
            continue
        task = loop.create_task(connector.aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
