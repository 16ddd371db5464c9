"""MCP tools for PenguiFlow: `MCPConnector` turns an MCP server's tools into namespaced
`NodeSpec`s (`server.tool`) a planner can call."""

from __future__ import annotations

from .config import CONFIG_ENV, MCPConfigError, MCPServerConfig, load_config
from .connector import (
    MCPConnectionError,
    MCPConnector,
    MCPError,
    MCPResourceContent,
    MCPTool,
    MCPToolError,
)

__all__ = [
    "CONFIG_ENV",
    "MCPConfigError",
    "MCPConnectionError",
    "MCPConnector",
    "MCPError",
    "MCPResourceContent",
    "MCPServerConfig",
    "MCPTool",
    "MCPToolError",
    "catalog_from",
    "load_config",
]


async def catalog_from(connectors: list[MCPConnector], *, skip_failed: bool = True) -> list[object]:
    """The tool specs of every connector, for a planner's catalog; tool names are namespaced
    `server.tool`, so two servers offering the same tool do not collide.

    A server that cannot be started or reached is logged (naming it) and left out, so the
    rest of the catalog still works; `skip_failed=False` raises instead."""
    import logging

    specs: list[object] = []
    for connector in connectors:
        try:
            specs += await connector.tool_specs()
        except MCPError as exc:
            if not skip_failed:
                raise
            logging.getLogger("penguiflow.mcp").warning("left out of the catalog: %s", exc)
    return specs
