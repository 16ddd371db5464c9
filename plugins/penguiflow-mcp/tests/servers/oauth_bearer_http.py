"""An MCP server over streamable HTTP on 127.0.0.1 that accepts one bearer token, which the
test can change while it runs (a token that rotates, as short-lived tokens from an identity
provider do).

python oauth_bearer_http.py PORT TOKEN

`POST /test/token` with the new token as its body replaces the accepted token (that path needs
no token). Requests with another token are answered 401, and counted (`GET /test/refused`).
"""

from __future__ import annotations

import json
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

port, accepted = int(sys.argv[1]), sys.argv[2]
refused = 0
server = MCPServer(name="rotating")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


app = server.streamable_http_app()


async def respond(send, status, body):  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def with_rotating_token(scope, receive, send):  # type: ignore[no-untyped-def]
    global accepted, refused
    if scope["type"] == "http" and scope["path"] == "/test/token":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        accepted = body.decode()
        return await respond(send, 200, {"rotated": True})
    if scope["type"] == "http" and scope["path"] == "/test/refused":
        return await respond(send, 200, {"refused": refused})
    if scope["type"] == "http":
        headers = dict(scope.get("headers") or [])
        if headers.get(b"authorization") != f"Bearer {accepted}".encode():
            refused += 1
            return await respond(send, 401, {"error": "invalid_token"})
    await app(scope, receive, send)


uvicorn.run(with_rotating_token, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
