"""An MCP server whose `unlock` tool adds a `secret` tool, then tells the client its tool list
changed; and whose `bump` tool changes the resource `growing://counter` and says so.

python growing_stdio.py [--http PORT [--legacy]]

By default it serves stdio and negotiates protocol 2026-07-28, where the change reaches a
client only on its `subscriptions/listen` stream. `--http PORT` serves streamable HTTP on
127.0.0.1:PORT/mcp instead. With `--legacy` (HTTP only) it refuses the 2026 `server/discover`
probe, as servers built before 2026 do, so the client falls back to the `initialize`
handshake (2025-11-25) and the change comes as a plain `notifications/tools/list_changed`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

legacy = "--legacy" in sys.argv
server = MCPServer(name="growing")


def secret(word: str) -> str:
    """Tells the secret (only listed after `unlock`)."""
    return f"the secret of {word} is 42"


@server.tool(description="Adds the tool `secret` and says the list changed.")
async def unlock(ctx: Context) -> str:
    if "secret" not in {tool.name for tool in await server.list_tools()}:
        server.add_tool(secret, structured_output=False)
    if legacy:
        await ctx.session.send_tool_list_changed()
    else:
        await ctx.notify_tools_changed()
    return "unlocked"


counter = {"value": 0}


@server.resource("growing://counter", mime_type="text/plain")
def read_counter() -> str:
    """How many times `bump` ran."""
    return str(counter["value"])


@server.tool(description="Adds one to growing://counter and tells its subscribers.")
async def bump(ctx: Context) -> str:
    counter["value"] += 1
    if legacy:
        await ctx.session.send_resource_updated("growing://counter")
    else:
        await ctx.notify_resource_updated("growing://counter")
    return str(counter["value"])


async def refusing_discover(scope: Any, incoming: Any, send: Any) -> None:
    """The HTTP app, answering `server/discover` with "Method not found" (a pre-2026 server)."""
    if scope["type"] == "http" and scope["method"] == "POST":
        chunks = []
        while True:
            message = await incoming()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if b'"server/discover"' in body:
            error = {"jsonrpc": "2.0", "id": json.loads(body).get("id"),
                     "error": {"code": -32601, "message": "Method not found"}}  # fmt: skip
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": json.dumps(error).encode()})
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await incoming()

        await app(scope, replay, send)
        return
    await app(scope, incoming, send)


if __name__ == "__main__":
    if "--http" in sys.argv:
        import uvicorn

        port = int(sys.argv[sys.argv.index("--http") + 1])
        app = server.streamable_http_app()
        target = refusing_discover if legacy else app
        uvicorn.run(target, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    else:
        server.run("stdio")
