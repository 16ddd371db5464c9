"""MCP tools for PenguiFlow: `MCPConnector` turns an MCP server's tools into namespaced
`NodeSpec`s (`server.tool`) a planner can call."""

from __future__ import annotations

from ._elicitation import (
    ElicitationAnswer,
    ElicitationCallback,
    ElicitationRequest,
    MCPElicitationError,
)
from ._features import (
    MCPCompletion,
    MCPPrompt,
    MCPPromptArgument,
    MCPPromptError,
    MCPPromptResult,
    MCPResource,
    MCPResourceTemplate,
    MCPResourceUpdate,
    MCPSubscription,
    expand_template,
)
from ._notifications import MCPLogLevel, MCPProgress, ProgressCallback
from ._roots import MCPRoot, MCPRootError
from ._sync import ToolSync
from .auth import (
    FileTokenStorage,
    InMemoryTokenStorage,
    MCPAuthorizationError,
    MCPOAuth,
    MCPTokenStorageError,
    TokenProvider,
    TokenStorage,
)
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
    "ElicitationAnswer",
    "ElicitationCallback",
    "ElicitationRequest",
    "FileTokenStorage",
    "InMemoryTokenStorage",
    "MCPAuthorizationError",
    "MCPCompletion",
    "MCPConfigError",
    "MCPConnectionError",
    "MCPConnector",
    "MCPElicitationError",
    "MCPError",
    "MCPLogLevel",
    "MCPOAuth",
    "MCPProgress",
    "MCPPrompt",
    "MCPPromptArgument",
    "MCPPromptError",
    "MCPPromptResult",
    "MCPResource",
    "MCPResourceContent",
    "MCPResourceTemplate",
    "MCPResourceUpdate",
    "MCPRoot",
    "MCPRootError",
    "MCPServerConfig",
    "MCPSubscription",
    "MCPTokenStorageError",
    "MCPTool",
    "MCPToolError",
    "ProgressCallback",
    "TokenProvider",
    "TokenStorage",
    "ToolSync",
    "catalog_from",
    "expand_template",
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
