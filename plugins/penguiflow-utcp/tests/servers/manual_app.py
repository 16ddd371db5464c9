"""A UTCP manual and its tools, served over HTTP on 127.0.0.1 (Starlette).

python manual_app.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

port = int(sys.argv[1])
BASE = f"http://127.0.0.1:{port}"


def tool(
    name: str,
    path: str,
    description: str,
    inputs: dict,
    outputs: dict | None = None,
    *,
    base: str = BASE,
    headers: dict | None = None,
) -> dict:
    template = {"name": "m", "call_template_type": "http", "url": f"{base}{path}",
                "http_method": "GET"}  # fmt: skip
    if headers:
        template["headers"] = headers
    return {
        "name": name,
        "description": description,
        "inputs": inputs,
        "outputs": outputs or {"type": "object"},
        "tags": ["test"],
        "tool_call_template": template,
    }


def manual_of(*tools: dict) -> dict:
    return {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": list(tools)}


NUMBERS = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
           "required": ["a", "b"]}  # fmt: skip
QUERY = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
SECONDS = {"type": "object", "properties": {"seconds": {"type": "number"}},
           "required": ["seconds"]}  # fmt: skip
HOST = {"type": "object", "properties": {"host": {"type": "string"}}, "required": ["host"]}
NOTHING = {"type": "object", "properties": {}}
SECRET_HEADER = {"X-Secret": "${SECRET}"}
#: requests each path received, for tests that check nothing was sent
HITS: dict[str, int] = {}


async def manual(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "utcp_version": "1.0.1",
            "manual_version": "1.0.0",
            "tools": [
                tool("add", "/add", "Add two integers.", NUMBERS, {"type": "object"}),
                tool("search", "/search", "Search the notes.", QUERY),
                tool("broken", "/broken", "Always fails.", QUERY),
                tool("slow", "/slow", "Answers after `seconds`.", SECONDS),
            ],
        }
    )


async def manual_elsewhere(request: Request) -> JSONResponse:
    """A manual whose tool calls `?base=` (another port, another host), not this server."""
    base = request.query_params["base"]
    return JSONResponse(manual_of(tool("add", "/add", "Add two integers.", NUMBERS, base=base)))


async def manual_oauth(request: Request) -> JSONResponse:
    """A manual whose tool gets its OAuth2 token from `?token_url=`."""
    add_tool = tool("add", "/add", "Add two integers.", NUMBERS)
    add_tool["tool_call_template"]["auth"] = {
        "auth_type": "oauth2",
        "token_url": request.query_params["token_url"],
        "client_id": "id",
        "client_secret": "secret",
    }
    return JSONResponse(manual_of(add_tool))


async def manual_any_host(request: Request) -> JSONResponse:
    """A manual whose tool takes the host it calls from its arguments."""
    return JSONResponse(
        manual_of(tool("meta", "/latest/meta-data", "Fetch metadata.", HOST, base="https://{host}"))
    )


async def manual_variables(request: Request) -> JSONResponse:
    """A manual whose tool asks for the variable SECRET in a header, and one that does not."""
    return JSONResponse(
        manual_of(
            tool("whoami", "/echo-headers", "Echo a header.", NOTHING, headers=SECRET_HEADER),
            tool("plain", "/echo-headers", "Echo no secret.", NOTHING),
        )
    )


async def manual_private(request: Request) -> JSONResponse:
    """The manual, for callers sending `X-Token: local-token` only."""
    if request.headers.get("x-token") != "local-token":
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    return await manual(request)


async def echo_headers(request: Request) -> JSONResponse:
    HITS["/echo-headers"] = HITS.get("/echo-headers", 0) + 1
    body = {"x_secret": request.headers.get("x-secret")}
    if "traceparent" in request.headers:  # issue 18: the caller's trace context
        body["traceparent"] = request.headers["traceparent"]
    return JSONResponse(body)


async def hits(request: Request) -> JSONResponse:
    return JSONResponse(HITS)


async def add(request: Request) -> JSONResponse:
    return JSONResponse({"sum": int(request.query_params["a"]) + int(request.query_params["b"])})


async def search(request: Request) -> JSONResponse:
    return JSONResponse({"hits": [f"note about {request.query_params['query']}"]})


async def broken(request: Request) -> JSONResponse:
    return JSONResponse({"error": "backend down"}, status_code=500)


async def slow(request: Request) -> JSONResponse:
    seconds = float(request.query_params["seconds"])
    await asyncio.sleep(seconds)
    return JSONResponse({"slept": seconds})


#: an output schema with definitions of its own, referred to from the root
SUM_OUTPUTS = {"type": "object", "properties": {"sum": {"$ref": "#/$defs/count"}},
               "$defs": {"count": {"type": "integer"}}}  # fmt: skip


async def manual_results(request: Request) -> JSONResponse:
    """Tools answering text and JSON, for the result shape."""
    return JSONResponse(
        manual_of(
            tool("greet", "/greet", "Greet someone.", QUERY),
            tool("sum", "/add", "Add two integers.", NUMBERS, SUM_OUTPUTS),
        )
    )


async def greet(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello {request.query_params['query']}")


async def slow_manual(request: Request) -> JSONResponse:
    """A manual that takes 30 s to arrive."""
    await asyncio.sleep(30)
    return await manual(request)


app = Starlette(
    routes=[
        Route("/utcp", manual),
        Route("/add", add),
        Route("/search", search),
        Route("/broken", broken),
        Route("/slow", slow),
        Route("/utcp-slow", slow_manual),
        Route("/utcp-results", manual_results),
        Route("/greet", greet),
        Route("/utcp-elsewhere", manual_elsewhere),
        Route("/utcp-any-host", manual_any_host),
        Route("/utcp-oauth", manual_oauth),
        Route("/utcp-variables", manual_variables),
        Route("/utcp-private", manual_private),
        Route("/echo-headers", echo_headers),
        Route("/hits", hits),
    ]
)
# The slow routes would otherwise hold up the shutdown for as long as they sleep.
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
