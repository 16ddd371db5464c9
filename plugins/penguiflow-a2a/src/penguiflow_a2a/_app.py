"""The Starlette app: A2A's HTTP+JSON binding and JSON-RPC binding over one `TaskManager`.

Every request goes through the same gate before reaching the manager: size limit, version
header, authentication. Every error leaves in the binding's shape (problem body with the
HTTP status for HTTP+JSON; a JSON-RPC error object for JSON-RPC), and an unexpected exception
becomes an internal error instead of a traceback on the wire.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from penguiflow_serve import TraceContextMiddleware
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from penguiflow.errors import describe_exception

from ._auth import Authenticator, Principal
from ._errors import (
    A2AError,
    AuthenticationError,
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    JSONParseError,
    MethodNotFoundError,
    PayloadTooLargeError,
    TaskNotFoundError,
    VersionNotSupportedError,
)
from ._tasks import TaskManager
from ._wire import (
    A2A_JSON_MEDIA_TYPE,
    AGENT_CARD_PATH,
    EXTENDED_CARD_PATH,
    STREAMING_JSONRPC_METHODS,
    SUPPORTED_VERSIONS,
    VERSION_HEADER,
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    JSONRPCRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    WireModel,
    to_wire,
)

__all__ = ["ServerLimits", "build_app"]

_M = TypeVar("_M", bound=WireModel)

_log = logging.getLogger("penguiflow_a2a.server")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Request limits. ``max_body_bytes`` bounds every request body (413 / -32600 beyond)."""

    max_body_bytes: int = 1_048_576


def _check_version(request: Request) -> None:
    # A request without the header is served as the current version: clients that predate the
    # header cannot be 0.3 clients on these paths (0.3 used other method names and paths), so
    # refusing them would only break hand-written calls.
    version = request.headers.get(VERSION_HEADER, "").strip()
    if not version:
        return
    major = version.split(".")[0]
    if not any(major == v.split(".")[0] for v in SUPPORTED_VERSIONS):
        raise VersionNotSupportedError(
            f"A2A version {version!r} is not supported; this server speaks "
            f"{', '.join(SUPPORTED_VERSIONS)} (send {VERSION_HEADER}: {SUPPORTED_VERSIONS[-1]})",
            data={"requested": version},
        )


async def _body(request: Request, limits: ServerLimits) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"the request body has {declared} bytes; this server accepts at most "
            f"{limits.max_body_bytes}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise PayloadTooLargeError(
                f"the request body is over this server's limit of {limits.max_body_bytes} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JSONParseError(f"the request body is not valid JSON: {exc}") from None


def _validate(model: type[_M], data: Any) -> _M:
    if not isinstance(data, dict):
        raise InvalidParamsError(f"expected a JSON object for {model.__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or model.__name__}: {e['msg']}"
            for e in exc.errors()
        )
        raise InvalidParamsError(f"invalid {model.__name__}: {problems}") from None


def _opt_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidParamsError(f"{name} must be an integer, got {value!r}") from None


# Marks an SSE stream as the HTTP+JSON binding's (events without a JSON-RPC envelope).
_REST: Any = object()


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _Bindings:
    def __init__(
        self,
        manager: TaskManager,
        card: AgentCard,
        authenticator: Authenticator,
        limits: ServerLimits,
        extended_card: AgentCard | None = None,
    ) -> None:
        self.manager = manager
        self.card = card
        self.authenticator = authenticator
        self.limits = limits
        self.extended_card = extended_card

    def _extended(self) -> dict[str, Any]:
        if self.extended_card is None:
            raise ExtendedAgentCardNotConfiguredError(
                f"this agent has no extended agent card; its public card is at {AGENT_CARD_PATH}"
            )
        return to_wire(self.extended_card)

    async def _principal(self, request: Request) -> Principal:
        headers = {k.lower(): v for k, v in request.headers.items()}
        principal = await self.authenticator.authenticate(headers)
        if principal is None:
            raise AuthenticationError()
        return principal

    # -- HTTP+JSON ----------------------------------------------------------------------------

    @staticmethod
    def _rest_error(error: A2AError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
        return JSONResponse(error.to_http_payload(), status_code=error.http_status, headers=headers)

    def rest(
        self, handler: Callable[[Request, Principal], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                _check_version(request)
                principal = await self._principal(request)
                _check_tenant(request.path_params.get("tenant"), principal)
                return await handler(request, principal)
            except A2AError as error:
                return self._rest_error(error)
            except Exception as exc:
                _log.exception("A2A request failed: %s", describe_exception(exc))
                return self._rest_error(InternalError())

        return endpoint

    @staticmethod
    def _json(model: WireModel | dict[str, Any]) -> Response:
        body = model if isinstance(model, dict) else to_wire(model)
        return JSONResponse(body, media_type=A2A_JSON_MEDIA_TYPE)

    async def card_endpoint(self, request: Request) -> Response:
        return JSONResponse(to_wire(self.card))

    async def rest_extended_card(self, request: Request, principal: Principal) -> Response:
        return JSONResponse(self._extended())

    async def rest_send(self, request: Request, principal: Principal) -> Response:
        data = _parse_json(await _body(request, self.limits))
        task = await self.manager.send(principal, _validate(SendMessageRequest, data))
        return self._json(SendMessageResponse(task=task))

    async def rest_stream(self, request: Request, principal: Principal) -> Response:
        data = _parse_json(await _body(request, self.limits))
        events = await self.manager.stream(principal, _validate(SendMessageRequest, data))
        return self._sse_response(events, _REST)

    async def rest_get(self, request: Request, principal: Principal) -> Response:
        history = _opt_int(request.query_params.get("historyLength"), "historyLength")
        task = await self.manager.get(principal, request.path_params["id"], history)
        return self._json(task)

    async def rest_cancel(self, request: Request, principal: Principal) -> Response:
        await _body(request, self.limits)  # bounded even though unused
        return self._json(await self.manager.cancel(principal, request.path_params["id"]))

    async def rest_subscribe(self, request: Request, principal: Principal) -> Response:
        events = await self.manager.subscribe(principal, request.path_params["id"])
        return self._sse_response(events, _REST)

    async def rest_list(self, request: Request, principal: Principal) -> Response:
        query = {k: v for k, v in request.query_params.items()}
        try:
            params = ListTasksRequest.model_validate(query)
        except ValidationError as exc:
            raise InvalidParamsError(f"invalid ListTasks query: {exc.errors()[0]['msg']}") from None
        return self._json(await self.manager.list_tasks(principal, params))

    async def rest_push_set(self, request: Request, principal: Principal) -> Response:
        data = _parse_json(await _body(request, self.limits))
        if isinstance(data, dict):
            data = {**data, "taskId": request.path_params["id"]}
        config = _validate(TaskPushNotificationConfig, data)
        return self._json(await self.manager.set_push_config(principal, config))

    async def rest_push_list(self, request: Request, principal: Principal) -> Response:
        configs = await self.manager.list_push_configs(principal, request.path_params["id"])
        return self._json(ListTaskPushNotificationConfigsResponse(configs=configs))

    async def rest_push_get(self, request: Request, principal: Principal) -> Response:
        config = await self.manager.get_push_config(
            principal, request.path_params["id"], request.path_params["push_id"]
        )
        return self._json(config)

    async def rest_push_delete(self, request: Request, principal: Principal) -> Response:
        await self.manager.delete_push_config(
            principal, request.path_params["id"], request.path_params["push_id"]
        )
        return self._json({})

    def _sse_response(self, events: AsyncIterator[StreamResponse], rpc_id: Any) -> Response:
        async def frames() -> AsyncIterator[bytes]:
            try:
                async for event in events:
                    body = to_wire(event)
                    if rpc_id is not _REST:
                        body = {"jsonrpc": "2.0", "id": rpc_id, "result": body}
                    yield _sse(body)
            except A2AError as error:
                yield self._stream_error(error, rpc_id)
            except Exception as exc:
                _log.exception("A2A stream failed: %s", describe_exception(exc))
                yield self._stream_error(InternalError(), rpc_id)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @staticmethod
    def _stream_error(error: A2AError, rpc_id: Any) -> bytes:
        if rpc_id is _REST:
            return _sse(error.to_http_payload(), "error")
        return _sse({"jsonrpc": "2.0", "id": rpc_id, "error": error.to_jsonrpc_error()}, "error")

    # -- JSON-RPC -----------------------------------------------------------------------------

    @staticmethod
    def _rpc_error(rpc_id: str | int | None, error: A2AError) -> Response:
        status = 401 if isinstance(error, AuthenticationError) else 200
        return JSONResponse(
            {"jsonrpc": "2.0", "id": rpc_id, "error": error.to_jsonrpc_error()},
            status_code=status,
        )

    async def jsonrpc(self, request: Request) -> Response:
        rpc_id: str | int | None = None
        try:
            data = _parse_json(await _body(request, self.limits))
            if isinstance(data, dict) and isinstance(data.get("id"), str | int):
                rpc_id = data["id"] if not isinstance(data["id"], bool) else None
            if not isinstance(data, dict):
                raise InvalidRequestError("batch and non-object JSON-RPC requests are not served")
            try:
                call = JSONRPCRequest.model_validate(data)
            except ValidationError as exc:
                raise InvalidRequestError(
                    f"not a JSON-RPC 2.0 request: {exc.errors()[0]['msg']}"
                ) from None
            if call.jsonrpc != "2.0":
                raise InvalidRequestError("'jsonrpc' must be exactly \"2.0\"")
            handler = self._methods.get(call.method)
            if handler is None:
                raise MethodNotFoundError(
                    f"no A2A method {call.method!r}; known: {', '.join(sorted(self._methods))}"
                )
            _check_version(request)
            principal = await self._principal(request)
            tenant = call.params.get("tenant") if isinstance(call.params, dict) else None
            _check_tenant(tenant if isinstance(tenant, str) else None, principal)
            if call.method in STREAMING_JSONRPC_METHODS:
                events = await handler(principal, call.params)
                return self._sse_response(events, rpc_id)
            result = await handler(principal, call.params)
            return JSONResponse({"jsonrpc": "2.0", "id": rpc_id, "result": result})
        except A2AError as error:
            return self._rpc_error(rpc_id, error)
        except Exception as exc:
            _log.exception("A2A JSON-RPC request failed: %s", describe_exception(exc))
            return self._rpc_error(rpc_id, InternalError())

    @property
    def _methods(self) -> dict[str, Callable[[Principal, dict[str, Any]], Awaitable[Any]]]:
        m = self.manager

        async def send(p: Principal, params: dict[str, Any]) -> Any:
            task = await m.send(p, _validate(SendMessageRequest, params))
            return to_wire(SendMessageResponse(task=task))

        async def stream(p: Principal, params: dict[str, Any]) -> Any:
            return await m.stream(p, _validate(SendMessageRequest, params))

        async def get(p: Principal, params: dict[str, Any]) -> Any:
            req = _validate(GetTaskRequest, params)
            return to_wire(await m.get(p, req.id, req.history_length))

        async def list_(p: Principal, params: dict[str, Any]) -> Any:
            return to_wire(await m.list_tasks(p, _validate(ListTasksRequest, params)))

        async def cancel(p: Principal, params: dict[str, Any]) -> Any:
            return to_wire(await m.cancel(p, _validate(CancelTaskRequest, params).id))

        async def subscribe(p: Principal, params: dict[str, Any]) -> Any:
            return await m.subscribe(p, _validate(SubscribeToTaskRequest, params).id)

        async def push_set(p: Principal, params: dict[str, Any]) -> Any:
            config = _validate(TaskPushNotificationConfig, params)
            if not config.task_id:
                raise InvalidParamsError("taskId is required")
            return to_wire(await m.set_push_config(p, config))

        async def push_get(p: Principal, params: dict[str, Any]) -> Any:
            req = _validate(GetTaskPushNotificationConfigRequest, params)
            return to_wire(await m.get_push_config(p, req.task_id, req.id))

        async def push_list(p: Principal, params: dict[str, Any]) -> Any:
            req = _validate(ListTaskPushNotificationConfigsRequest, params)
            configs = await m.list_push_configs(p, req.task_id)
            return to_wire(ListTaskPushNotificationConfigsResponse(configs=configs))

        async def push_delete(p: Principal, params: dict[str, Any]) -> Any:
            req = _validate(DeleteTaskPushNotificationConfigRequest, params)
            await m.delete_push_config(p, req.task_id, req.id)
            return None

        async def extended(p: Principal, params: dict[str, Any]) -> Any:
            return self._extended()

        return {
            "SendMessage": send,
            "SendStreamingMessage": stream,
            "GetTask": get,
            "ListTasks": list_,
            "CancelTask": cancel,
            "SubscribeToTask": subscribe,
            "CreateTaskPushNotificationConfig": push_set,
            "GetTaskPushNotificationConfig": push_get,
            "ListTaskPushNotificationConfigs": push_list,
            "DeleteTaskPushNotificationConfig": push_delete,
            "GetExtendedAgentCard": extended,
        }


def _check_tenant(named: str | None, principal: Principal) -> None:
    """A tenant named by the request (the ``/{tenant}/...`` path form, or JSON-RPC's
    ``tenant`` param) must be the caller's own; any other is answered as not found, so a
    caller learns nothing about other tenants."""
    if named and named != principal.tenant:
        raise TaskNotFoundError(
            f"nothing under tenant {named!r} for this caller; use your own tenant in the "
            "path (or leave it out)"
        )


def _rest_routes(b: _Bindings, p: str) -> list[Route]:
    """The HTTP+JSON binding's routes under the path prefix ``p``."""
    return [
        Route(f"{p}{EXTENDED_CARD_PATH}", b.rest(b.rest_extended_card), methods=["GET"]),
        Route(f"{p}/message:send", b.rest(b.rest_send), methods=["POST"]),
        Route(f"{p}/message:stream", b.rest(b.rest_stream), methods=["POST"]),
        Route(f"{p}/tasks/{{id}}:cancel", b.rest(b.rest_cancel), methods=["POST"]),
        Route(f"{p}/tasks/{{id}}:subscribe", b.rest(b.rest_subscribe), methods=["GET", "POST"]),
        Route(
            f"{p}/tasks/{{id}}/pushNotificationConfigs/{{push_id}}",
            b.rest(b.rest_push_get),
            methods=["GET"],
        ),
        Route(
            f"{p}/tasks/{{id}}/pushNotificationConfigs/{{push_id}}",
            b.rest(b.rest_push_delete),
            methods=["DELETE"],
        ),
        Route(
            f"{p}/tasks/{{id}}/pushNotificationConfigs", b.rest(b.rest_push_set), methods=["POST"]
        ),
        Route(
            f"{p}/tasks/{{id}}/pushNotificationConfigs", b.rest(b.rest_push_list), methods=["GET"]
        ),
        Route(f"{p}/tasks/{{id}}", b.rest(b.rest_get), methods=["GET"]),
        Route(f"{p}/tasks", b.rest(b.rest_list), methods=["GET"]),
    ]


def build_app(
    manager: TaskManager,
    card: AgentCard,
    authenticator: Authenticator,
    limits: ServerLimits,
    *,
    jsonrpc_path: str = "/",
    rest_prefix: str = "",
    extended_card: AgentCard | None = None,
) -> Starlette:
    b = _Bindings(manager, card, authenticator, limits, extended_card)
    routes = [
        Route(AGENT_CARD_PATH, b.card_endpoint, methods=["GET"]),
        *_rest_routes(b, rest_prefix),
        # The SDK's clients put a tenant they are given in front of every HTTP+JSON path.
        # Listed after the plain routes, so a plain path never reads as a tenant.
        *_rest_routes(b, rest_prefix + "/{tenant}"),
        Route(jsonrpc_path, b.jsonrpc, methods=["POST"]),
    ]
    # A caller's `traceparent` makes the work it asks for part of its trace.
    return Starlette(routes=routes, middleware=[Middleware(TraceContextMiddleware)])
