"""Connectors: objects that contribute callable tools to the catalogue (MCP, UTCP, ...).

A connector has a `name` and two async methods. Its tools are exposed under namespaced names,
`<connector>.<tool>`, so two servers that both offer `search` do not collide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .errors import PenguiFlowError

__all__ = ["Connector", "ConnectorTool", "ToolNameCollisionError", "namespaced_tools"]


class ToolNameCollisionError(PenguiFlowError, ValueError):
    """Two contributions share one name; the message names both sides and how to fix it."""


@runtime_checkable
class Connector(Protocol):
    """A source of tools. `list_tools()` returns objects with a `name` (tool specs)."""

    name: str

    async def list_tools(self) -> Sequence[Any]: ...

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class ConnectorTool:
    """One tool of one connector, under its namespaced name."""

    qualified_name: str
    connector: Connector
    tool: Any

    async def call(self, arguments: Mapping[str, Any]) -> Any:
        return await self.connector.call_tool(self.tool.name, arguments)


async def namespaced_tools(connectors: Iterable[Connector]) -> dict[str, ConnectorTool]:
    """Every tool of every connector, keyed `connector.tool`.

    Raises `ToolNameCollisionError` when two connectors share a name, or one connector lists
    the same tool twice."""
    seen_connectors: dict[str, Connector] = {}
    tools: dict[str, ConnectorTool] = {}
    for connector in connectors:
        other = seen_connectors.get(connector.name)
        if other is not None:
            raise ToolNameCollisionError(
                f"two connectors are named {connector.name!r} ({other!r} and {connector!r}); "
                "their tools would collide as "
                f"'{connector.name}.<tool>': give one of them another name"
            )
        seen_connectors[connector.name] = connector
        for tool in await connector.list_tools():
            qualified = f"{connector.name}.{tool.name}"
            if qualified in tools:
                raise ToolNameCollisionError(
                    f"connector {connector.name!r} lists tool {tool.name!r} twice; "
                    "tool names must be unique within a connector"
                )
            tools[qualified] = ConnectorTool(qualified, connector, tool)
    return tools
