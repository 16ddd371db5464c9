"""UTCP tools for PenguiFlow: `UTCPConnector` turns a UTCP manual's tools into namespaced
`NodeSpec`s (`manual.tool`) a planner can call."""

from __future__ import annotations

from .connector import UTCPConnectionError, UTCPConnector, UTCPError, UTCPTool, UTCPToolError

__all__ = ["UTCPConnectionError", "UTCPConnector", "UTCPError", "UTCPTool", "UTCPToolError"]
