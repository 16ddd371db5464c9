"""The Starlette application: HTTP endpoints, the SSE stream and the WebSocket endpoint."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from penguiflow_serve import TraceContextMiddleware, health_routes
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from penguiflow.errors import ConfigurationError
from penguiflow.health import HealthChecks, default_checks

from ._auth import AuthenticationError, Authenticator, Principal
from ._errors import ServerError, error_body, from_exception
from ._host import ServerLimits, SessionHost, ToolContextFactory
from ._sse import sse_stream
from ._wire import (
    SESSION_ID_PATTERN,
    CreateSessionRequest,
    MessageRequest,
    SteerRequest,
    task_view,
    update_view,
)
from ._ws import serve_websocket

if TYPE_CHECKING:
    from ..manager import SessionManager
    from ..models import UpdateType
    from ..session import TaskPipeline

__all__ = ["create_app"]

_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def error_response(error: ServerError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error_body(error), status_code=error.status, headers=headers)


class _Api:
    """The endpoints, sharing the host, the authenticator and the limits."""

    def __init__(self, host: SessionHost, authenticator: Authenticator) -> None:
        self.host = host
        self.authenticator = authenticator
        self.limits = host.limits

    # -- request helpers -------------------------------------------------------------------

    async def principal(self, connection: HTTPConnection) -> Principal:
        principal = await self.authenticator.authenticate(connection)
        if principal is None:
            raise AuthenticationError(
                "this server needs a bearer token: send 'Authorization: Bearer <token>'"
            )
        return principal

    def session_id(self, connection: HTTPConnection) -> str:
        session_id = str(connection.path_params["session_id"])
        if not _SESSION_ID.match(session_id):
            raise ServerError(
                422,
                "invalid_request",
                "a session id is 1 to 128 characters from letters, digits and '_.~-'",
            )
        return session_id

    async def body(self, request: Request) -> Any:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise _too_large(len(data), limit)
        if not data.strip():
            return {}
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ServerError(
                400, "invalid_json", f"the request body is not valid JSON ({exc})"
            ) from None

    # -- endpoints ---------------------------------------------------------------------------

    async def create_session(self, request: Request) -> Response:
        principal = await self.principal(request)
        body = CreateSessionRequest.model_validate(await self.body(request))
        session_id = body.session_id or self.host.new_session_id()
        await self.host.open(principal, session_id)
        return JSONResponse({"session_id": session_id}, status_code=201)

    async def get_session(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        session = await self.host.open(principal, session_id)
        tasks = await session.list_tasks()
        return JSONResponse(
            {"session_id": session_id, "tasks": [task_view(t, session_id) for t in tasks]}
        )

    async def delete_session(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        if not await self.host.close_session(principal, session_id):
            raise ServerError(404, "not_found", f"no open session {session_id!r}")
        return Response(status_code=204)

    async def list_tasks(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        session = await self.host.open(principal, session_id)
        tasks = await session.list_tasks()
        return JSONResponse({"tasks": [task_view(t, session_id) for t in tasks]})

    async def get_task(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        task_id = str(request.path_params["task_id"])
        session = await self.host.open(principal, session_id)
        task = await session.get_task(task_id)
        if task is None:
            raise ServerError(404, "not_found", f"no task {task_id!r} in session {session_id!r}")
        return JSONResponse(task_view(task, session_id))

    async def list_updates(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        params = request.query_params
        limit_text = params.get("limit", "500")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 5000:
            raise ServerError(422, "invalid_request", "limit must be an integer from 1 to 5000")
        session = await self.host.open(principal, session_id)
        updates = await session.list_updates(
            task_id=params.get("task_id") or None,
            since_id=params.get("since_id") or None,
            limit=int(limit_text),
        )
        return JSONResponse({"updates": [update_view(u, session_id) for u in updates]})

    async def post_message(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        body = MessageRequest.model_validate(await self.body(request))
        task_id = await self.host.start_turn(principal, session_id, body)
        return JSONResponse({"session_id": session_id, "task_id": task_id}, status_code=202)

    async def steer(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        body = SteerRequest.model_validate(await self.body(request))
        event_id, accepted = await self.host.steer(principal, session_id, body)
        return JSONResponse({"event_id": event_id, "accepted": accepted}, status_code=202)

    async def cancel_task(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        body = await self.body(request)
        reason = body.get("reason") if isinstance(body, dict) else None
        payload = {"reason": str(reason)} if reason else {}
        steer = SteerRequest(
            task_id=str(request.path_params["task_id"]), event_type="CANCEL", payload=payload
        )
        event_id, accepted = await self.host.steer(principal, session_id, steer)
        return JSONResponse({"event_id": event_id, "accepted": accepted}, status_code=202)

    async def events(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        task_ids, update_types = _filters(request)
        # EventSource sends the last id it saw when it reconnects; it wins over the URL's.
        since_id = request.headers.get("last-event-id") or request.query_params.get("since_id")
        session = await self.host.open(principal, session_id)
        subscription = await session.subscribe(
            task_ids=task_ids, update_types=update_types, since_id=since_id or None
        )
        return StreamingResponse(
            sse_stream(subscription, session_id, heartbeat_s=self.limits.heartbeat_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def _filters(connection: HTTPConnection) -> tuple[list[str] | None, list[UpdateType] | None]:
    from ..models import UpdateType

    params = connection.query_params
    task_ids = [t for t in params.getlist("task_id") if t] or None
    update_types: list[UpdateType] = []
    for raw in params.getlist("update_type"):
        try:
            update_types.append(UpdateType(raw.upper()))
        except ValueError:
            choices = ", ".join(t.value for t in UpdateType)
            raise ServerError(
                422, "invalid_request", f"unknown update_type {raw!r}; choose from {choices}"
            ) from None
    return task_ids, update_types or None


def _too_large(size: int, limit: int) -> ServerError:
    return ServerError(
        413,
        "payload_too_large",
        f"the request body is {size} bytes, over the server's limit of {limit} "
        "(ServerLimits.max_body_bytes)",
    )


def _guarded(handler: Any) -> Any:
    # One place turns every failure into the JSON error shape.
    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except Exception as exc:
            return error_response(from_exception(exc))
        return response

    endpoint.__name__ = handler.__name__
    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    message = {
        404: f"no endpoint at {request.url.path}; see docs/sessions-server.md",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return error_response(ServerError(exc.status_code, code, message))


def create_app(
    *,
    authenticator: Authenticator,
    manager: SessionManager | None = None,
    planner: Any = None,
    turn_pipeline: TaskPipeline | None = None,
    tool_context: ToolContextFactory | None = None,
    limits: ServerLimits | None = None,
) -> Starlette:
    """An ASGI app exposing sessions over HTTP, Server-Sent Events and WebSocket.

    `authenticator` decides who each request is (`BearerTokenAuthenticator`, your own, or
    `AnonymousAuthenticator` for a server only this machine can reach). Sessions live on
    `manager` (a new `SessionManager` by default). Foreground turns run `planner` (a
    `ReactPlanner`, forked for every turn), or `turn_pipeline` (any task pipeline); with
    neither, `POST .../messages` answers 501 and the rest works. `app.state.session_host` is
    the `SessionHost`; closing the app (its lifespan) closes the sessions it opened.
    `GET /healthz` and `GET /readyz` answer probes without authentication; readiness checks
    the plugins and the manager's state store, and `app.state.health` (a
    `penguiflow.health.HealthChecks`) takes checks of your own."""
    if not isinstance(authenticator, Authenticator):
        raise ConfigurationError(
            "create_app(authenticator=...) needs an object with `async authenticate(connection)`"
            ", such as BearerTokenAuthenticator({token: Principal(tenant, user)})"
        )
    if planner is not None and turn_pipeline is not None:
        raise ConfigurationError("pass create_app() a planner or a turn_pipeline, not both")
    if manager is None:
        from ..manager import SessionManager

        manager = SessionManager()
    if planner is not None:
        from ._planner import planner_wiring

        turn_pipeline, tool_context = planner_wiring(planner, manager, tool_context)
    host = SessionHost(
        manager, turn_pipeline=turn_pipeline, tool_context=tool_context, limits=limits
    )
    api = _Api(host, authenticator)

    async def websocket_endpoint(websocket: Any) -> None:
        await serve_websocket(api, websocket)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await host.aclose()

    checks = _health_checks(manager)
    sid = "/sessions/{session_id}"
    routes = [
        *health_routes(checks),
        Route("/sessions", _guarded(api.create_session), methods=["POST"]),
        Route(sid, _guarded(api.get_session), methods=["GET"]),
        Route(sid, _guarded(api.delete_session), methods=["DELETE"]),
        Route(sid + "/tasks", _guarded(api.list_tasks), methods=["GET"]),
        Route(sid + "/tasks/{task_id}", _guarded(api.get_task), methods=["GET"]),
        Route(sid + "/tasks/{task_id}/cancel", _guarded(api.cancel_task), methods=["POST"]),
        Route(sid + "/updates", _guarded(api.list_updates), methods=["GET"]),
        Route(sid + "/messages", _guarded(api.post_message), methods=["POST"]),
        Route(sid + "/steer", _guarded(api.steer), methods=["POST"]),
        Route(sid + "/events", _guarded(api.events), methods=["GET"]),
        WebSocketRoute(sid + "/ws", websocket_endpoint),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        # A caller's `traceparent` makes the turns and tasks it starts part of its trace.
        middleware=[Middleware(TraceContextMiddleware)],
    )
    app.state.session_host = host
    app.state.health = checks
    return app


def _health_checks(manager: SessionManager) -> HealthChecks:
    """Readiness: plugins loaded, and the sessions' store writable (or reachable, for a
    store that cannot be written to without side effects)."""
    from ..persistence import StateStoreSessionAdapter

    # The manager keeps the store its sessions share; None means each keeps its own in memory.
    store = getattr(manager, "_state_store", None)
    if isinstance(store, StateStoreSessionAdapter):
        store = store.store  # probe the kernel store itself: it has memory_state to write
    return default_checks(state_store=store)
