"""An MCP server of our own over streamable HTTP on 127.0.0.1, requiring a bearer token.

python calc_http.py PORT TOKEN [NAME] [MODE]

MODE (comma-separated): `legacy` speaks only the session-based protocol versions (it refuses
the 2026 `server/discover` probe, as servers built before it do); `answers-400` answers a
session id it does not know with 400 and the wording of servers built on the TypeScript SDK,
instead of the spec's 404 (what the Python SDK sends).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import sys
from typing import Annotated, Literal

import uvicorn
from mcp.server.mcpserver import Image, MCPServer
from mcp_types import (
    BlobResourceContents,
    EmbeddedResource,
    ResourceLink,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import Field

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5f0000000049454e44ae426082"
)

port, token = int(sys.argv[1]), sys.argv[2]
server = MCPServer(name=sys.argv[3] if len(sys.argv) > 3 else "calc")
mode = sys.argv[4] if len(sys.argv) > 4 else ""


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@server.tool(description="Books a flight (constraints a subset checker would miss).")
def book(
    origin: Annotated[str, Field(pattern=r"^[A-Z]{3}$")],
    seats: Annotated[int, Field(ge=1, le=9)],
    cabin: Literal["economy", "business"] = "economy",
    tags: Annotated[list[str], Field(max_length=2)] = [],  # noqa: B006 (read-only)
) -> dict[str, object]:
    return {"origin": origin, "seats": seats, "cabin": cabin}


@server.tool(
    description="Search the calculator's notes.",
    structured_output=False,
    annotations=ToolAnnotations(title="Search notes", read_only_hint=True),
)
def search(query: str) -> str:
    return f"calc notes about {query}"


@server.tool(description="A very long text.", structured_output=False)
def blob(size: int) -> str:
    return "x" * size


@server.tool(description="A one-pixel picture.")
def picture() -> Image:
    return Image(data=PNG, format="png")


ARCHIVE = gzip.compress(b"calc archive " * 50, mtime=0)


@server.tool(description="The notes as a gzip archive (an embedded binary resource).")
def archive() -> list[EmbeddedResource]:
    blob = BlobResourceContents(
        uri="calc://notes.gz", mime_type="application/gzip", blob=base64.b64encode(ARCHIVE).decode()
    )
    return [EmbeddedResource(type="resource", resource=blob)]


@server.tool(description="The notes as an embedded text resource.")
def notes() -> list[EmbeddedResource]:
    text = TextResourceContents(uri="calc://notes.md", mime_type="text/markdown", text="# Notes")
    return [EmbeddedResource(type="resource", resource=text)]


@server.tool(description="A link to the notes (a resource_link result).")
def link() -> list[ResourceLink]:
    gz = "application/gzip"
    return [
        ResourceLink(type="resource_link", uri="calc://notes.gz", name="notes.gz", mime_type=gz)
    ]


@server.resource("calc://notes.gz", mime_type="application/gzip")
def notes_archive() -> bytes:
    return ARCHIVE


@server.tool(
    description="Fails on purpose.",
    structured_output=False,
    annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True),
)
def fail(reason: str) -> str:
    raise ValueError(reason)


@server.tool(description="Answers after `seconds`.", structured_output=False)
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds}s"


@server.tool(description="Kills the server mid-call.", structured_output=False)
def crash() -> str:
    os._exit(3)


#: the `traceparent` headers of the POST requests received, in order (issue 18's tests)
TRACEPARENTS: list[str] = []


@server.tool(description="The traceparent headers received so far.", structured_output=False)
def traceparents() -> str:
    return json.dumps(TRACEPARENTS)


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
        if scope["method"] == "POST" and b"traceparent" in headers:
            TRACEPARENTS.append(headers[b"traceparent"].decode())
    if "answers-400" in mode:
        send = _as_400(send)
    if "legacy" in mode and scope["type"] == "http" and scope["method"] == "POST":
        body, receive = await _peek(receive)
        if b'"server/discover"' in body:
            request_id = json.loads(body).get("id")
            error = {"jsonrpc": "2.0", "id": request_id,
                     "error": {"code": -32601, "message": "Method not found"}}  # fmt: skip
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": json.dumps(error).encode()})
            return
    await app(scope, receive, send)


async def _peek(receive):  # type: ignore[no-untyped-def]
    """The whole request body, and a `receive` that hands it to the app again."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay():  # type: ignore[no-untyped-def]
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _as_400(send):  # type: ignore[no-untyped-def]
    rewriting = False

    async def rewrite(message):  # type: ignore[no-untyped-def]
        nonlocal rewriting
        if message["type"] == "http.response.start" and message["status"] == 404:
            rewriting = True
            message = {
                **message,
                "status": 400,
                "headers": [
                    (k, v) for k, v in message["headers"] if k.lower() != b"content-length"
                ],
            }
        elif message["type"] == "http.response.body" and rewriting:
            body = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32000, "message": "Bad Request: No valid session ID provided"},
            }
            message = {**message, "body": json.dumps(body).encode()}
        await send(message)

    return rewrite


uvicorn.run(with_auth, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
