"""An A2A agent built with the official SDK (`a2a-sdk`), run in its own process by the
client's interoperability tests: `python sdk_agent.py` prints `PORT <n>` once it listens on
127.0.0.1.

What it does depends on the text it receives:

- `echo <text>`: completes with one text artifact `<skill>:<text>` (the skill from the
  message metadata);
- `stream <n>`: streams `n` text chunks `c0 c1 ...` as one appended artifact, then completes;
- `data`: completes with one data artifact;
- `fail` / `reject`: ends failed ("boom") / rejected;
- `ask`: asks for input (input-required);
- `block`: works until canceled. `GET /_test/cancelled` lists the tasks the SDK asked this
  executor to cancel, so a test can see that a cancel reached the agent.

Requests must carry `Authorization: Bearer secret-token` when `--token` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import Any

import uvicorn
from a2a.helpers.proto_helpers import (
    new_data_part,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Role,
    TaskState,
)
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CANCELLED: list[str] = []


class TestExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        text = context.get_user_input().strip()
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        skill = (
            str(context.message.metadata["skill"]) if "skill" in context.message.metadata else ""
        )
        command, _, rest = text.partition(" ")
        if command == "echo":
            await updater.add_artifact([new_text_part(f"{skill}:{rest}")], name="answer")
            await updater.complete()
        elif command == "stream":
            for index in range(int(rest)):
                await updater.add_artifact(
                    [new_text_part(f"c{index} ")],
                    artifact_id="stream",
                    append=index > 0,
                    last_chunk=index == int(rest) - 1,
                )
            await updater.complete()
        elif command == "data":
            await updater.add_artifact([new_data_part({"answer": 42, "skill": skill})])
            await updater.complete()
        elif command == "fail":
            await updater.failed(new_text_message("boom", role=Role.ROLE_AGENT))
        elif command == "reject":
            await updater.reject(new_text_message("not for me", role=Role.ROLE_AGENT))
        elif command == "ask":
            await updater.requires_input(new_text_message("which city?", role=Role.ROLE_AGENT))
        elif command == "block":
            await asyncio.Event().wait()  # until the SDK cancels this coroutine
        else:
            await updater.failed(new_text_message(f"unknown command {text!r}"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        CANCELLED.append(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).update_status(
            TaskState.TASK_STATE_CANCELED
        )


def build_card(url: str) -> AgentCard:
    return AgentCard(
        name="SDK Test Agent",
        description="An agent written with the official A2A SDK, for interop tests.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="HTTP+JSON", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(
                id="echo",
                name="Echo",
                description="Echoes the message back, prefixed with the skill.",
                tags=["test"],
                examples=["echo hello"],
            ),
            AgentSkill(
                id="numbers",
                name="Numbers",
                description="Answers with a JSON number.",
                tags=["test"],
            ),
        ],
    )


class _Token(BaseHTTPMiddleware):
    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path.startswith("/.well-known") or request.url.path.startswith("/_test"):
            return await call_next(request)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {
                    "error": {
                        "code": 401,
                        "status": "UNAUTHENTICATED",
                        "message": "missing or wrong bearer token",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "UNAUTHENTICATED",
                            }
                        ],
                    }
                },
                status_code=401,
            )
        return await call_next(request)


async def _cancelled(_: Request) -> Response:
    return JSONResponse(CANCELLED)


def build_app(url: str, token: str | None) -> Starlette:
    card = build_card(url)
    handler = DefaultRequestHandler(
        agent_executor=TestExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = [
        *create_agent_card_routes(card),
        Route("/_test/cancelled", _cancelled, methods=["GET"]),
        *create_rest_routes(handler),
    ]
    app = Starlette(routes=routes)
    if token is not None:
        app.add_middleware(_Token, token=token)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue from now on, so the test may call at once
    port = sock.getsockname()[1]
    app = build_app(f"http://127.0.0.1:{port}", args.token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    print(f"PORT {port}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    sys.exit(main())
