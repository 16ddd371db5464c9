"""An A2A agent served by penguiflow_a2a's own server, run in its own process by the
client's tests: `python our_agent.py` prints `PORT <n>` once it listens on 127.0.0.1.

Its flow echoes the payload, streams its words as chunks when it starts with `words`, and
waits until cancelled when it is `block` (a cancel shows as the task's canceled state).
Requests must carry `Authorization: Bearer secret-token`.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from penguiflow_a2a.server import (
    AgentCard,
    AgentSkill,
    BearerTokenAuthenticator,
    create_a2a_app,
)

from penguiflow import Message, Node, NodePolicy, create
from penguiflow.runtime import Flow

CARD = AgentCard(
    name="PenguiFlow Test Agent",
    description="A PenguiFlow flow served as an A2A agent, for the client's tests.",
    version="1.0.0",
    skills=[AgentSkill(id="echo", name="Echo", description="Echoes, streams or blocks.")],
)


async def work(message: Message, ctx: Any) -> Message:
    text = str(message.payload)
    if text == "block":
        await asyncio.Event().wait()  # until the trace is cancelled
    if text.startswith("words"):
        words = text.split()[1:]
        for index, word in enumerate(words):
            await ctx.emit_chunk(parent=message, text=word, done=index == len(words) - 1)
    return message.model_copy(update={"payload": f"echo {text}"})


def build_flow() -> Flow:
    return create(Node(work, name="work", policy=NodePolicy(validate="none")).to())


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue from now on, so the test may call at once
    port = sock.getsockname()[1]
    app = create_a2a_app(
        build_flow,
        agent_card=CARD,
        authenticator=BearerTokenAuthenticator({"secret-token": "acme"}),
        base_url=f"http://127.0.0.1:{port}",
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    print(f"PORT {port}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
