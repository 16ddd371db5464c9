"""The playground's ASGI app: the page, its JSON and SSE API, the session server mounted under
`/api`, AG-UI, and the health routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from penguiflow.errors import ConfigurationError

from ._agent import Agent, FlowTurnPipeline, agent_of
from ._api import PlaygroundApi, guarded
from ._hub import EventHub

__all__ = ["LOCAL_PRINCIPAL", "create_playground_app"]

#: who uses the playground: one local person, whose traces are filed under tenant "local"
LOCAL_PRINCIPAL = ("local", "local")


def _static_dir() -> str:
    from importlib.resources import files

    return str(files("penguiflow_playground") / "static")


def _authenticator(token: str | None) -> Any:
    from penguiflow_sessions.server import (
        AnonymousAuthenticator,
        BearerTokenAuthenticator,
        Principal,
    )

    principal = Principal(*LOCAL_PRINCIPAL)
    if token is None:
        return AnonymousAuthenticator(principal)
    # Browsers cannot put headers on EventSource: the page sends ?access_token= on GETs.
    return BearerTokenAuthenticator({token: principal}, allow_query_token=True)


def create_playground_app(
    agent: Agent | Any,
    *,
    state_store: Any | None = None,
    token: str | None = None,
    manager: Any | None = None,
    target: str | None = None,
) -> Starlette:
    """The playground for `agent` (an `Agent`, a `ReactPlanner` or a flow built with
    `penguiflow.create`). `target` is what the page's header names it by (`penguiflow dev`
    passes its `module:attr`); by default an `Agent`'s own, else the object's class.

    `state_store` (a kernel state store; in memory when None) keeps the sessions, their
    tasks and updates, and the recorded traces the History view searches. With `token`,
    every API request needs it (`Authorization: Bearer`, or `?access_token=` on GET), as
    it must when the server is reachable from other machines. `app.state.hub` is the
    `EventHub`, `app.state.session_host` the sessions' `SessionHost`. The app's lifespan
    starts the hub (and a flow that is not running) and closes what it opened."""
    from penguiflow_serve import health_routes
    from penguiflow_sessions import SessionManager
    from penguiflow_sessions.server import create_app

    if not isinstance(agent, Agent):
        agent = agent_of(agent, target)
    elif target is not None:
        agent = Agent(agent.kind, agent.value, target)
    if token is not None and not token.strip():
        raise ConfigurationError("the playground token is empty; pass a non-empty --token")
    if manager is None:
        if state_store is None:
            from penguiflow.state import InMemoryStateStore

            state_store = InMemoryStateStore()
        manager = SessionManager(state_store=state_store)
    authenticator = _authenticator(token)
    if agent.kind == "planner":
        sessions_app = create_app(planner=agent.value, manager=manager, authenticator=authenticator)
    else:
        sessions_app = create_app(
            turn_pipeline=FlowTurnPipeline(agent.value),
            manager=manager,
            authenticator=authenticator,
        )
    host = sessions_app.state.session_host
    hub = EventHub(state_store)
    api = PlaygroundApi(agent, host, authenticator, hub)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        started_flow = False
        if agent.kind == "flow" and not getattr(agent.value, "running", True):
            agent.value.run()
            started_flow = True
        try:
            yield
        finally:
            # Sessions first: their tasks end (and are recorded) before the hub stops.
            await host.aclose()
            await hub.aclose()
            if started_flow:
                await agent.value.stop()

    static = _static_dir()

    async def index(request: Request) -> Response:
        return FileResponse(f"{static}/index.html", headers={"Cache-Control": "no-store"})

    async def agui(request: Request) -> Response:
        from ._agui import agui_endpoint

        return await agui_endpoint(api, request)

    sid = "/api/sessions/{session_id}"
    routes: list[Any] = [
        # /healthz and /readyz, with the session server's checks (plugins, the state store)
        *health_routes(sessions_app.state.health),
        Route("/", index, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=static), name="static"),
        Route("/api/info", guarded(api.info), methods=["GET"]),
        Route("/api/graph", guarded(api.graph), methods=["GET"]),
        Route("/api/live", guarded(api.live), methods=["GET"]),
        Route("/api/history", guarded(api.history), methods=["GET"]),
        Route("/api/history/{trace_id}", guarded(api.trace), methods=["GET"]),
        Route("/api/history/{trace_id}/export", guarded(api.trace), methods=["GET"]),
        Route(sid + "/chat", guarded(api.chat), methods=["POST"]),
        Route(sid + "/pauses", guarded(api.pauses), methods=["GET"]),
        Route(sid + "/pauses/{task_id}/{action}", guarded(api.resolve_pause), methods=["POST"]),
        Route(sid + "/groups", guarded(api.groups), methods=["GET"]),
        Route(sid + "/memory", guarded(api.memory), methods=["GET"]),
        Route("/ag-ui", guarded(agui), methods=["POST"]),
        # Sessions, tasks, cancel, steer, updates and their SSE stream: the session server's.
        Mount("/api", app=sessions_app),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    app.state.session_host = host
    app.state.api = api
    app.state.agent = agent
    app.state.health = sessions_app.state.health
    return app
