"""An MCP server over stdio whose tools log each start (with the server's pid) to a file, so
a test can kill the process in the middle of a call and count how often a call ran.

python jobs_stdio.py LOG
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

log = sys.argv[1]
server = MCPServer(name="jobs")


def started(tool: str) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(f"start {tool} {os.getpid()}\n")


@server.tool(
    description="Looks a key up.",
    structured_output=False,
    annotations=ToolAnnotations(title="Look a key up", read_only_hint=True),
)
async def lookup(key: str, seconds: float) -> str:
    started("lookup")
    await asyncio.sleep(seconds)
    return f"lookup {key} done"


@server.tool(
    description="Stores a key (the same call twice stores it once).",
    structured_output=False,
    annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
)
async def put(key: str, seconds: float) -> str:
    started("put")
    await asyncio.sleep(seconds)
    return f"put {key} done"


@server.tool(description="Charges a card (no annotations).", structured_output=False)
async def charge(key: str, seconds: float) -> str:
    started("charge")
    await asyncio.sleep(seconds)
    return f"charge {key} done"


@server.tool(
    description="Deletes everything.",
    structured_output=False,
    annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True),
)
def wipe() -> str:
    return "wiped"


server.run("stdio")
