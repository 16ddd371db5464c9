"""The playground's own JSON and SSE endpoints, beside the session server it mounts.

Sessions, tasks, steering and the session update stream are penguiflow-sessions' (mounted
under `/api`); what is here is what the playground adds: chat turns recorded as traces,
pauses, the live event stream, the graph, the history and the memory view."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from penguiflow.errors import (
    ConfigurationError,
    PenguiFlowError,
    UnknownNameError,
    UsageError,
    describe_exception,
)

from ._agent import Agent
from ._hub import EventHub, TraceRecord

__all__ = ["PlaygroundApi", "guarded"]

logger = logging.getLogger("penguiflow_playground")

_SESSION_ID = re.compile(r"^[A-Za-z0-9_.~-]{1,128}$")
_HEARTBEAT_S = 15.0


class ApiError(PenguiFlowError):
    """A request the playground refuses: its HTTP status, a stable code and a message saying
    what to fix."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_response(exc: BaseException) -> JSONResponse:
    from penguiflow_sessions.server import AuthenticationError, ServerError

    if isinstance(exc, ApiError | ServerError):
        status, code, message = exc.status, exc.code, exc.message
    elif isinstance(exc, AuthenticationError):
        status, code, message = 401, "unauthenticated", describe_exception(exc)
    elif isinstance(exc, ValidationError):
        status, code = 422, "invalid_request"
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
    elif isinstance(exc, UnknownNameError):
        status, code = 404, "not_found"
        message = str(exc.args[0]) if exc.args else describe_exception(exc)
    elif isinstance(exc, UsageError):
        status, code, message = 409, "conflict", describe_exception(exc)
    elif isinstance(exc, ConfigurationError | ValueError):
        status, code, message = 422, "invalid_request", describe_exception(exc)
    elif isinstance(exc, PenguiFlowError):
        status, code, message = 400, "bad_request", describe_exception(exc)
    else:
        logger.error("playground: unexpected error", exc_info=exc)
        status, code = 500, "internal_error"
        message = f"the playground failed: {type(exc).__name__}: {describe_exception(exc)}"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message, "status": status}},
        status_code=status,
        headers=headers,
    )


def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Any:
    """`handler`, with every failure answered as `{"error": {"code", "message", "status"}}`."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return _error_response(exc)

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint


def sse(data: Any, *, event: str | None = None, event_id: str | None = None) -> bytes:
    from penguiflow_sessions.server import encode_sse

    return encode_sse(data=data, event=event, event_id=event_id)


class PlaygroundApi:
    """The endpoints; they share the agent, the session host (from the mounted session
    server), the authenticator and the event hub."""

    def __init__(self, agent: Agent, host: Any, authenticator: Any, hub: EventHub) -> None:
        self.agent = agent
        self.host = host
        self.authenticator = authenticator
        self.hub = hub
        self._turns: dict[tuple[Any, str], str] = {}
        #: the runs still going, so the shutdown can wait for them to be recorded
        self.running: set[str] = set()

    # -- helpers -------------------------------------------------------------------------------

    async def principal(self, connection: HTTPConnection) -> Any:
        from penguiflow_sessions.server import AuthenticationError

        principal = await self.authenticator.authenticate(connection)
        if principal is None:
            raise AuthenticationError(
                "this playground needs its token: open the URL `penguiflow dev` printed "
                "(it carries ?token=), or send 'Authorization: Bearer <token>'"
            )
        return principal

    @staticmethod
    def session_id(connection: HTTPConnection) -> str:
        session_id = str(connection.path_params["session_id"])
        if not _SESSION_ID.match(session_id):
            raise ApiError(
                422,
                "invalid_request",
                "a session id is 1 to 128 characters from letters, digits and '_.~-'",
            )
        return session_id

    @staticmethod
    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > 256 * 1024:
            raise ApiError(413, "payload_too_large", "the request body is over 256 KiB")
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "invalid_json", f"the request body is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ApiError(422, "invalid_request", "the request body must be a JSON object")
        return data

    # -- runs ------------------------------------------------------------------------------------

    async def start_run(
        self, principal: Any, session_id: str, query: str, *, kind: str = "chat"
    ) -> tuple[str, str, Any]:
        """Start a foreground turn answering `query` in the principal's session, recorded as
        a trace; returns `(task_id, trace_id, session)`. The run belongs to the session, not
        to the request: a client that goes away leaves it running and recorded."""
        from penguiflow_sessions.models import TaskType

        if not query.strip():
            raise ApiError(422, "invalid_request", "the message is empty; type something to send")
        session = await self.host.open(principal, session_id)
        running = self._turns.get((principal, session_id))
        if running is not None:
            state = await session.get_task(running)
            if state is not None and not state.status.is_terminal:
                raise ApiError(
                    409,
                    "turn_in_progress",
                    f"turn {running} is still {state.status.value}: answer its pause, wait for "
                    "it, or cancel it in the Tasks view",
                )
        trace_id = secrets.token_hex(16)
        record = TraceRecord(
            trace_id=trace_id,
            session_id=session_id,
            tenant=principal.tenant,
            user=principal.user,
            kind=f"{self.agent.kind}.{kind}",
            title=query[:120],
        )
        await self.hub.register(record)
        task_id = await session.spawn_task(
            self._recorded(trace_id),
            task_type=TaskType.FOREGROUND,
            query=query,
            description=query[:120],
            trace_id=trace_id,
        )
        record.task_id = task_id
        self._turns[(principal, session_id)] = task_id
        return task_id, trace_id, session

    def _recorded(self, trace_id: str) -> Callable[[Any], Awaitable[Any]]:
        pipeline = self.host.turn_pipeline
        hub = self.hub
        running = self.running

        async def run(runtime: Any) -> Any:
            running.add(trace_id)
            status = "failed"
            try:
                result = await pipeline(runtime)
                status = "complete"
                return result
            except asyncio.CancelledError:
                status = "cancelled"
                raise
            except BaseException as exc:
                if type(exc).__name__ == "SteeringCancelled":
                    status = "cancelled"
                raise
            finally:
                running.discard(trace_id)
                await hub.finish(trace_id, status)

        return run

    async def chat(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        body = await self.body(request)
        query = body.get("query")
        if not isinstance(query, str):
            raise ApiError(422, "invalid_request", 'send {"query": "<your message>"}')
        task_id, trace_id, _ = await self.start_run(principal, session_id, query)
        return JSONResponse(
            {"session_id": session_id, "task_id": task_id, "trace_id": trace_id},
            status_code=202,
        )

    # -- pauses ----------------------------------------------------------------------------------

    async def pauses(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        session = await self.host.open(principal, session_id)
        found = []
        for task in await session.list_tasks():
            if task.status.value != "PAUSED":
                continue
            updates = await session.list_updates(task_id=task.task_id, limit=5000)
            checkpoints = [
                u.content
                for u in updates
                if u.update_type.value == "CHECKPOINT"
                and isinstance(u.content, dict)
                and u.content.get("ref")
            ]
            if not checkpoints:
                continue
            last = checkpoints[-1]
            found.append(
                {
                    "task_id": task.task_id,
                    "trace_id": task.trace_id,
                    "ref": last.get("ref"),
                    "kind": last.get("kind"),
                    "reason": last.get("reason"),
                    "prompt": last.get("prompt"),
                    "payload": last.get("payload"),
                    "options": last.get("options") or ["approve", "reject"],
                }
            )
        return JSONResponse({"pauses": found})

    async def resolve_pause(self, request: Request) -> Response:
        from penguiflow_sessions.server import SteerRequest

        principal = await self.principal(request)
        session_id = self.session_id(request)
        task_id = str(request.path_params["task_id"])
        action = str(request.path_params["action"])
        body = await self.body(request)
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            raise ApiError(
                422, "invalid_request", 'send {"ref": "<the pause ref from GET .../pauses>"}'
            )
        text = body.get("text")
        payload: dict[str, Any] = {"resume_token": ref}
        if action == "approve":
            event_type = "APPROVE"
            payload["decision"] = str(text) if text else "approved in the playground"
        elif action == "answer":
            if not isinstance(text, str) or not text.strip():
                raise ApiError(422, "invalid_request", 'an answer needs {"text": "..."}')
            event_type = "APPROVE"
            payload["user_input"] = text
        elif action == "reject":
            event_type = "REJECT"
        else:
            raise ApiError(
                404, "not_found", f"no pause action {action!r}; use approve, reject or answer"
            )
        steer = SteerRequest(task_id=task_id, event_type=event_type, payload=payload)
        event_id, accepted = await self.host.steer(principal, session_id, steer)
        return JSONResponse({"event_id": event_id, "accepted": accepted}, status_code=202)

    # -- live events -------------------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        await self.principal(request)
        params = request.query_params
        trace_ids = [t for t in params.getlist("trace_id") if t]
        session_id = params.get("session_id") or None
        # Subscribed before the replay is read: nothing published in between is missed, and
        # `seq` drops what both would send.
        subscription = self.hub.subscribe(trace_ids=trace_ids, session_id=session_id)
        replay = [view for trace_id in trace_ids for view in self.hub.recent(trace_id)]
        return StreamingResponse(
            _live_stream(subscription, replay),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- graph, info -------------------------------------------------------------------------------

    async def info(self, request: Request) -> Response:
        await self.principal(request)
        info: dict[str, Any] = {
            "kind": self.agent.kind,
            "target": self.agent.target,
            "label": self.agent.label,
            "budgets": None,
        }
        if self.agent.kind == "planner":
            # The limits each run has, for the Live view's "left" line (None: no limit).
            from dataclasses import asdict

            info["budgets"] = asdict(self.agent.value.budgets)
        return JSONResponse(info)

    async def graph(self, request: Request) -> Response:
        await self.principal(request)
        from ._graph import agent_graph

        return JSONResponse(agent_graph(self.agent))

    # -- tasks beyond the session server's -------------------------------------------------------

    async def groups(self, request: Request) -> Response:
        principal = await self.principal(request)
        session = await self.host.open(principal, self.session_id(request))
        groups = await session.list_groups()
        return JSONResponse({"groups": [g.model_dump(mode="json") for g in groups]})

    # -- memory ------------------------------------------------------------------------------------

    async def memory(self, request: Request) -> Response:
        principal = await self.principal(request)
        session_id = self.session_id(request)
        session = await self.host.open(principal, session_id)
        llm_context, tool_context = session.get_context()
        snapshot = await self._memory_snapshot(principal, session.session_id, tool_context)
        return JSONResponse(
            {
                "session_id": session_id,
                "llm_context": _jsonable(llm_context),
                "context_version": session.context_version,
                "context_hash": session.context_hash,
                "pending_patches": sorted(session.pending_patches),
                "background_results": sorted(session.get_background_results()),
                "memory": snapshot,
            }
        )

    async def _memory_snapshot(
        self, principal: Any, scoped_session: str, tool_context: dict[str, Any]
    ) -> Any:
        if self.agent.kind == "planner":
            # Asked of the planner itself: it knows where it keeps its memory (its own state
            # store, a memory object, a strategy) and how a turn's key is made. The context
            # is the one a foreground turn of this session runs with (PlannerTaskPipeline).
            tools = {
                "tenant_id": principal.tenant,
                "user_id": principal.user,
                **tool_context,
                "session_id": scoped_session,
            }
            return _jsonable(await self.agent.value.memory_snapshot(tool_context=tools))
        # A flow has no planner memory of its own: what is saved under the session's key in
        # the playground's store, if anything.
        store = self.hub.store
        if store is None or not callable(getattr(store, "load_memory_state", None)):
            return None
        from penguiflow.memory import MemoryKey, read_memory_state

        key = MemoryKey(principal.tenant, principal.user, scoped_session)
        return _jsonable(await read_memory_state(store, key))

    # -- history -----------------------------------------------------------------------------------

    async def history(self, request: Request) -> Response:
        principal = await self.principal(request)
        params = request.query_params
        tenant = params.get("tenant") or principal.tenant
        records = self.hub.search(
            tenant=tenant,
            session_id=params.get("session_id") or None,
            since=_time(params.get("since"), "since"),
            until=_time(params.get("until"), "until"),
            text=params.get("q") or None,
            limit=_limit(params.get("limit")),
        )
        return JSONResponse({"traces": [r.to_dict() for r in records]})

    async def trace(self, request: Request) -> Response:
        principal = await self.principal(request)
        trace_id = str(request.path_params["trace_id"])
        found = await self.hub.trace(trace_id)
        owner = found["trace"].get("tenant") if found is not None else None
        if found is None or (owner is not None and owner != principal.tenant):
            raise ApiError(
                404, "not_found", f"no trace {trace_id!r} in the history; search it in History"
            )
        if request.url.path.endswith("/export"):
            return JSONResponse(
                found,
                headers={"Content-Disposition": f'attachment; filename="trace-{trace_id}.json"'},
            )
        return JSONResponse(found)


async def _live_stream(subscription: Any, replay: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n: subscribed\n\n"
    try:
        last = 0
        if replay:
            replay.sort(key=lambda v: int(v.get("seq") or 0))
            last = int(replay[-1].get("seq") or 0)
            yield b"".join(sse(view, event_id=str(view["seq"])) for view in replay)
        queue = subscription.queue
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), _HEARTBEAT_S)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if item is None:
                yield sse({"reason": "playground stopping"}, event="end")
                return
            batch = [item]
            while not queue.empty():
                batch.append(queue.get_nowait())
            chunks = []
            for view in batch:
                if view is None:
                    chunks.append(sse({"reason": "playground stopping"}, event="end"))
                    yield b"".join(chunks)
                    return
                if int(view.get("seq") or 0) <= last:
                    continue
                chunks.append(sse(view, event_id=str(view["seq"])))
            if chunks:
                yield b"".join(chunks)
    finally:
        subscription.close()


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=lambda v: f"<{type(v).__name__}>")


def _time(raw: str | None, name: str) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    from datetime import datetime

    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        raise ApiError(
            422,
            "invalid_request",
            f"{name} must be seconds since the epoch or an ISO date-time, got {raw!r}",
        ) from None


def _limit(raw: str | None) -> int:
    if not raw:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= 2000:
        raise ApiError(422, "invalid_request", "limit must be an integer from 1 to 2000")
    return int(raw)
