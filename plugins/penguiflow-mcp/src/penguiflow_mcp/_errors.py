"""The errors of the MCP connector: one root, `MCPError`, under PenguiFlow's."""

from __future__ import annotations

from penguiflow.errors import PenguiFlowError

__all__ = ["MCPConnectionError", "MCPError", "MCPToolError"]


class MCPError(PenguiFlowError, RuntimeError):
    """Something went wrong with an MCP server; the message names the server."""


class MCPConnectionError(MCPError, ConnectionError):
    """The server could not be started or reached, or dropped the connection."""


class MCPToolError(MCPError):
    """The tool ran and reported an error, or its arguments do not match its schema."""
