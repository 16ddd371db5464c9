"""HTTP details of the client: server-sent events, and error answers as exceptions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from ._errors import A2AError, error_from_http

__all__ = ["SSEEvent", "error_from_answer", "iter_sse", "response_error"]


@dataclass(slots=True, frozen=True)
class SSEEvent:
    event: str
    data: str


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Server-sent events from a response's lines (the WHATWG rules we need: `event:` and
    `data:` fields, several data lines joined by newlines, comments and ids ignored, a blank
    line ending an event)."""
    event = "message"
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        # a stream cut without its final blank line still delivers what it carried
        yield SSEEvent(event, "\n".join(data))


def error_from_answer(status_code: int, body: Any, *, agent_url: str, what: str) -> A2AError:
    """The `A2AError` subclass an error answer stands for, its message naming the agent and
    the call (the agent's own message says what was wrong)."""
    error = error_from_http(status_code, body)
    return type(error)(
        f"the agent at {agent_url} refused {what} (HTTP {status_code}, {error.reason}): "
        f"{error.message}",
        data=error.data,
    )


async def response_error(response: httpx.Response, *, agent_url: str, what: str) -> A2AError:
    """The error an HTTP error response stands for (its body read if it was streamed)."""
    content = await response.aread()
    try:
        body: Any = json.loads(content)
    except ValueError:
        # not JSON (a proxy's page, say): keep its start, it usually says what went wrong
        text = content.decode("utf-8", "replace").strip()[:300] or response.reason_phrase
        body = {"error": {"message": text}}
    return error_from_answer(response.status_code, body, agent_url=agent_url, what=what)
