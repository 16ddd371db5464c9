"""Helpers for the server tests: uvicorn in-process on a free loopback port, an SSE reader
on httpx, and a task pipeline the test drives step by step."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from penguiflow_sessions.models import UpdateType
from penguiflow_sessions.server import Principal, SessionHost
from starlette.applications import Starlette

ALICE = Principal("acme", "alice")
BOB = Principal("acme", "bob")
EVE = Principal("other", "alice")
TOKENS = {"alice-token-1": ALICE, "bob-token-12": BOB, "eve-token-123": EVE}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for(predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Poll `predicate` until true; fail after `timeout` seconds (a deadline, not a clock
    assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.005)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0) -> None:
    """Await `check()` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Serve `app` with uvicorn in this event loop on 127.0.0.1; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1, ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    # uvicorn would install SIGINT handlers; the test runner keeps its own.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: server.started or task.done())
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def host_of(app: Starlette) -> SessionHost:
    host = app.state.session_host
    assert isinstance(host, SessionHost)
    return host


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: Any


@dataclass
class SseReader:
    """Reads an open `text/event-stream` response: events, and the comments between them."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines = self.response.aiter_lines()

    async def next_event(self) -> SseEvent:
        fields: dict[str, str] = {}
        data: list[str] = []
        async for line in self._lines:
            if line == "":
                if data:
                    return SseEvent(
                        fields.get("id"), fields.get("event"), json.loads("\n".join(data))
                    )
                fields.clear()  # a block without data (`retry:` alone) is no event
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        raise AssertionError("the stream ended")

    async def until_comment(self, text: str) -> None:
        async for line in self._lines:
            if line.startswith(":") and line[1:].strip() == text:
                self.comments.append(text)
                return
        raise AssertionError(f"the stream ended before the comment {text!r}")


class Driven:
    """A task pipeline that emits what the test sends it and ends when told; it also records
    the steering events its inbox receives."""

    def __init__(self) -> None:
        self.commands: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.steering: list[Any] = []
        self.running = asyncio.Event()

    def emit(self, content: Any, update_type: UpdateType = UpdateType.PROGRESS) -> None:
        self.commands.put_nowait(("emit", (update_type, content)))

    def finish(self, payload: Any = "done") -> None:
        self.commands.put_nowait(("finish", payload))

    async def __call__(self, runtime: Any) -> Any:
        self.running.set()
        while True:
            get = asyncio.ensure_future(self.commands.get())
            steer = asyncio.ensure_future(runtime.steering.next())
            done, _ = await asyncio.wait({get, steer}, return_when=asyncio.FIRST_COMPLETED)
            for pending in (get, steer):
                if pending not in done:
                    pending.cancel()
            if steer in done:
                self.steering.append(steer.result())
            if get in done:
                kind, value = get.result()
                if kind == "finish":
                    return value
                update_type, content = value
                runtime.emit_update(update_type, content)


async def spawn_driven(
    host: SessionHost, principal: Principal, session_id: str
) -> tuple[str, Driven]:
    """Spawn a `Driven` background task in the principal's session; wait until it runs."""
    from penguiflow_sessions.models import TaskType

    session = await host.open(principal, session_id)
    driven = Driven()
    task_id = await session.spawn_task(driven, task_type=TaskType.BACKGROUND, query="driven")
    await asyncio.wait_for(driven.running.wait(), 10)
    return task_id, driven
