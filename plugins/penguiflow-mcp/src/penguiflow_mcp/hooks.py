"""The plugin's hooks: MCP servers from configuration become connectors.

Servers come from the plugin configuration (`config["mcp"]["servers"]`, a list of server
declarations) and from the file named by `PENGUIFLOW_MCP_CONFIG`. A package can ship
preconfigured servers by implementing `penguiflow_register_connectors` the same way.
"""

from __future__ import annotations

import os
from typing import Any

from penguiflow.hookspecs import hookimpl

from .config import CONFIG_ENV, MCPServerConfig, load_config
from .connector import MCPConnector

__all__ = ["penguiflow_register_connectors"]


@hookimpl
def penguiflow_register_connectors(config: dict[str, Any]) -> list[Any]:
    servers: list[MCPServerConfig] = []
    section = config.get("mcp") if isinstance(config, dict) else None
    if isinstance(section, dict) and section.get("servers"):
        servers += load_config({"servers": section["servers"]})
    path = os.environ.get(CONFIG_ENV)
    if path:
        servers += load_config(path)
    return [MCPConnector(server) for server in servers]
