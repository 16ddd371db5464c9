"""The reference "everything" server from the npm registry (a server nobody here wrote), over
stdio and over streamable HTTP: the connector lists its tools and calls them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from penguiflow_mcp import MCPConnector, MCPServerConfig


def test_lists_and_calls_the_reference_servers_tools(
    everything: Callable[..., MCPServerConfig],
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            names = {tool.name for tool in await connector.list_tools()}
            assert {"echo", "get-sum", "get-tiny-image", "get-resource-links"} <= names
            result = await connector.call_tool("get-sum", {"a": 2, "b": 40})
            assert "42" in result.text

    asyncio.run(scenario())
