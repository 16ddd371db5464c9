"""An MCP server over stdio that logs on stderr, as most real ones do."""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="chatty")


@server.tool(description="Says hello (and logs that it did).", structured_output=False)
async def hello(name: str) -> str:
    print(f"chatty: greeting {name}", file=sys.stderr, flush=True)
    return f"hello {name}"


if __name__ == "__main__":
    print("chatty: ready", file=sys.stderr, flush=True)
    server.run("stdio")
