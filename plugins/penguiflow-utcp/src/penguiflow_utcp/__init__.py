"""UTCP tools for PenguiFlow: `UTCPConnector` turns a UTCP manual's tools into namespaced
`NodeSpec`s (`manual.tool`) a planner can call. A manual's tools may call only the manual's
own origin and the `allowed_hosts` you list, and read only the `allowed_variables` you list."""

from __future__ import annotations

from .connector import (
    UTCPConnectionError,
    UTCPConnector,
    UTCPError,
    UTCPPolicyError,
    UTCPTool,
    UTCPToolError,
)

__all__ = [
    "UTCPConnectionError",
    "UTCPConnector",
    "UTCPError",
    "UTCPPolicyError",
    "UTCPTool",
    "UTCPToolError",
]
