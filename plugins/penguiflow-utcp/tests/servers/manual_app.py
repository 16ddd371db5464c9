"""A UTCP manual and its tools, served over HTTP on 127.0.0.1 (Starlette).

python manual_app.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

port = int(sys.argv[1])
BASE = f"http://127.0.0.1:{port}"


def tool(name: str, path: str, description: str, inputs: dict, outputs: dict | None = None) -> dict:
    return {
        "name": name,
        "description": description,
        "inputs": inputs,
        "outputs": outputs or {"type": "object"},
        "tags": ["test"],
        "tool_call_template": {
            "name": "m",
            "call_template_type": "http",
            "url": f"{BASE}{path}",
            "http_method": "GET",
        },
    }


NUMBERS = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
           "required": ["a", "b"]}  # fmt: skip
QUERY = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
SECONDS = {"type": "object", "properties": {"seconds": {"type": "number"}},
           "required": ["seconds"]}  # fmt: skip


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
    ]
)
# The slow routes would otherwise hold up the shutdown for as long as they sleep.
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
