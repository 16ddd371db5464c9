"""Helpers for the server tests: example flows and an in-process uvicorn on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from penguiflow_a2a.server import AgentCard, AgentSkill, card_with_url

from penguiflow import Message, Node, create

CARD = AgentCard(
    name="shouter",
    description="Upper-cases what it is told",
    version="1.0.0",
    skills=[AgentSkill(id="shout", name="shout", description="Upper-case text", tags=["text"])],
)


def shout_flow() -> Any:
    async def shout(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": str(message.payload).upper()})

    return create(Node(shout, name="shout").to())


def stream_flow() -> Any:
    async def talk(message: Message, ctx: Any) -> Message:
        words = str(message.payload).split()
        for i, word in enumerate(words):
            await ctx.emit_chunk(parent=message, text=word, done=i == len(words) - 1)
        return message.model_copy(update={"payload": f"{len(words)} words"})

    return create(Node(talk, name="talk").to())


class Blocker:
    """A flow whose node waits until released; `started` is set when it begins."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()

    def flow(self) -> Any:
        async def wait(message: Message, ctx: Any) -> Message:
            self.started.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return message

        return create(Node(wait, name="wait").to())


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve(build: Callable[[str], Any]) -> AsyncIterator[str]:
    """Run the app ``build(base_url)`` returns with uvicorn in this event loop; yields the URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    app = build(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not server.started:
        if task.done():
            task.result()
        if loop.time() > deadline:
            raise TimeoutError("uvicorn did not start")
        await asyncio.sleep(0.01)  # polling a flag with a deadline, not synchronisation by time
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def card_for(url: str) -> AgentCard:
    return card_with_url(CARD, url)
