"""A real HTTP receiver for push-notification tests: uvicorn in this event loop on a free
127.0.0.1 port, recording every request and answering from a script of status codes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    url: str
    #: Status codes answered in turn; once used up, every request gets 200.
    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    #: When set, each request waits for it before answering (a slow receiver).
    gate: asyncio.Event | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, *, timeout_s: float = 10.0) -> list[Received]:
        """Wait (on the receiver's own event, bounded by a deadline) for `count` requests."""

        async def until() -> None:
            while len(self.requests) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout_s)
        return self.requests


@contextlib.asynccontextmanager
async def push_receiver(path: str = "/hook") -> AsyncIterator[Receiver]:
    sock = socket.socket(socket.AF_INET)
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: connections wait in the backlog, so the test needs
    # no "has the server started" wait.
    sock.listen(64)
    port = sock.getsockname()[1]
    receiver = Receiver(url=f"http://127.0.0.1:{port}{path}")

    async def hook(request: Request) -> Response:
        body = await request.json()
        receiver.requests.append(Received(dict(request.headers), body))
        receiver.changed.set()
        if receiver.gate is not None:
            await receiver.gate.wait()
        status = receiver.script.pop(0) if receiver.script else 200
        return Response(status_code=status)

    app = Starlette(routes=[Route(path, hook, methods=["POST"])])
    config = uvicorn.Config(app, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        yield receiver
    finally:
        if receiver.gate is not None:
            receiver.gate.set()
        server.should_exit = True
        await task
        sock.close()
