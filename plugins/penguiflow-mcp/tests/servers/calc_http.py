"""An MCP server of our own over streamable HTTP on 127.0.0.1, requiring a bearer token.

python calc_http.py PORT TOKEN [NAME]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import uvicorn
from mcp.server.mcpserver import Image, MCPServer

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5f0000000049454e44ae426082"
)

port, token = int(sys.argv[1]), sys.argv[2]
server = MCPServer(name=sys.argv[3] if len(sys.argv) > 3 else "calc")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@server.tool(description="Search the calculator's notes.", structured_output=False)
def search(query: str) -> str:
    return f"calc notes about {query}"


@server.tool(description="A very long text.", structured_output=False)
def blob(size: int) -> str:
    return "x" * size


@server.tool(description="A one-pixel picture.")
def picture() -> Image:
    return Image(data=PNG, format="png")


@server.tool(description="Fails on purpose.", structured_output=False)
def fail(reason: str) -> str:
    raise ValueError(reason)


@server.tool(description="Answers after `seconds`.", structured_output=False)
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds}s"


@server.tool(description="Kills the server mid-call.", structured_output=False)
def crash() -> str:
    os._exit(3)


app = server.streamable_http_app()


async def with_auth(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "http":
        headers = dict(scope.get("headers") or [])
        if headers.get(b"authorization") != f"Bearer {token}".encode():
            body = json.dumps({"error": "missing or wrong bearer token"}).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
    await app(scope, receive, send)


uvicorn.run(with_auth, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
