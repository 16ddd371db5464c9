"""`SessionHost`: the sessions one server exposes, each scoped to the principal that owns it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from penguiflow.errors import ConfigurationError
from penguiflow.resources import AsyncResource

from ._auth import Principal
from ._errors import ServerError
from ._wire import MessageRequest, SteerRequest

if TYPE_CHECKING:
    from ..manager import SessionManager
    from ..session import StreamingSession, TaskPipeline

__all__ = ["ServerLimits", "SessionHost", "ToolContextFactory"]

#: Extra tool context for a principal's sessions (clients, credentials): called once per
#: session opened in this process; the server adds `tenant_id` and `user_id` itself.
ToolContextFactory = Callable[[Principal, str], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one client may ask of the server.

    `max_body_bytes` bounds an HTTP request body and `max_ws_message_bytes` one WebSocket
    frame (steering payloads are further bounded by the session's own limits);
    `max_sessions_per_principal` bounds the sessions one principal keeps open in this
    process; `heartbeat_s` is how often an idle SSE stream or WebSocket gets a keep-alive
    (which is also how a vanished client is noticed)."""

    max_body_bytes: int = 64 * 1024
    max_ws_message_bytes: int = 64 * 1024
    max_sessions_per_principal: int = 100
    heartbeat_s: float = 15.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_ws_message_bytes", "max_sessions_per_principal"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"ServerLimits.{name} must be an int >= 1, got {value!r}")
        if not self.heartbeat_s > 0:
            raise ConfigurationError(
                f"ServerLimits.heartbeat_s must be > 0 seconds, got {self.heartbeat_s!r}"
            )


def _scoped_id(principal: Principal, session_id: str) -> str:
    # Each part is percent-escaped, so no tenant or user name can forge another's prefix.
    return "/".join(quote(part, safe="") for part in (principal.tenant, principal.user, session_id))


class SessionHost(AsyncResource):
    """Opens sessions on a `SessionManager` under an id scoped to their owner.

    A client names a session by its own id (`chat-1`); the manager holds it as
    `tenant/user/chat-1`. Two principals using the same id get two sessions, and no id a
    client can write reaches another principal's session, so isolation does not depend on
    every endpoint remembering an ownership check."""

    def __init__(
        self,
        manager: SessionManager,
        *,
        turn_pipeline: TaskPipeline | None = None,
        tool_context: ToolContextFactory | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        self.manager = manager
        self.turn_pipeline = turn_pipeline
        self.limits = limits or ServerLimits()
        self._tool_context = tool_context
        self._open: dict[Principal, set[str]] = {}
        self._turns: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    def scoped_id(self, principal: Principal, session_id: str) -> str:
        return _scoped_id(principal, session_id)

    async def open(self, principal: Principal, session_id: str) -> StreamingSession:
        """The principal's session `session_id`, created (and hydrated from the state
        store) on first use."""
        if self._closed:
            raise ServerError(503, "shutting_down", "the server is shutting down; retry later")
        scoped = _scoped_id(principal, session_id)
        async with self._lock:
            owned = self._open.setdefault(principal, set())
            is_new = session_id not in owned
            if is_new and len(owned) >= self.limits.max_sessions_per_principal:
                raise ServerError(
                    429,
                    "too_many_sessions",
                    f"you have {len(owned)} sessions open, the limit "
                    f"(max_sessions_per_principal); close one with DELETE /sessions/<id>",
                )
            session = await self.manager.get_or_create(scoped)
            if is_new:
                owned.add(session_id)
                context: dict[str, Any] = {}
                if self._tool_context is not None:
                    context.update(self._tool_context(principal, session_id))
                context.update(tenant_id=principal.tenant, user_id=principal.user)
                _, existing = session.get_context()
                session.update_context(tool_context={**existing, **context})
        return session

    def new_session_id(self) -> str:
        return secrets.token_urlsafe(12)

    async def close_session(self, principal: Principal, session_id: str) -> bool:
        """Close the principal's session in this process (its stored history stays)."""
        async with self._lock:
            owned = self._open.get(principal, set())
            if session_id not in owned:
                return False
            owned.discard(session_id)
            scoped = _scoped_id(principal, session_id)
            self._turns.pop(scoped, None)
        await self.manager.drop(scoped)
        return True

    async def start_turn(
        self, principal: Principal, session_id: str, request: MessageRequest
    ) -> str:
        """Spawn a foreground turn answering `request.query`; returns its task id."""
        if self.turn_pipeline is None:
            raise ServerError(
                501,
                "no_planner",
                "this server runs no planner, so it cannot start turns; serve a factory that "
                "returns a ReactPlanner (penguiflow serve-session myapp:build_planner)",
            )
        from ..models import TaskType

        session = await self.open(principal, session_id)
        scoped = _scoped_id(principal, session_id)
        running = self._turns.get(scoped)
        if running is not None:
            state = await session.get_task(running)
            if state is not None and not state.status.is_terminal:
                raise ServerError(
                    409,
                    "turn_in_progress",
                    f"turn {running} is still {state.status.value}; send a USER_MESSAGE "
                    "steering event to it, or CANCEL it and try again",
                )
        if request.llm_context is not None:
            _, tool_context = session.get_context()
            session.update_context(llm_context=request.llm_context, tool_context=tool_context)
        task_id = await session.spawn_task(
            self.turn_pipeline,
            task_type=TaskType.FOREGROUND,
            query=request.query,
            description=request.query[:120],
        )
        self._turns[scoped] = task_id
        return task_id

    async def steer(
        self, principal: Principal, session_id: str, request: SteerRequest
    ) -> tuple[str, bool]:
        """Deliver one steering event; returns its id and whether the session accepted it."""
        from ..steering import SteeringEvent

        session = await self.open(principal, session_id)
        if await session.get_task(request.task_id) is None:
            raise ServerError(
                404,
                "not_found",
                f"no task {request.task_id!r} in session {session_id!r}; list them with "
                f"GET /sessions/{session_id}/tasks",
            )
        fields: dict[str, Any] = {
            "session_id": session.session_id,
            "task_id": request.task_id,
            "event_type": request.event_type.upper(),
            "payload": request.payload,
            "trace_id": request.trace_id,
            # Whatever the client claims, it speaks for its user.
            "source": "user",
        }
        if request.event_id is not None:
            fields["event_id"] = request.event_id
        event = SteeringEvent(**fields)
        accepted = await session.steer(event)
        return event.event_id, bool(accepted)

    async def aclose(self) -> None:
        """Close every session this host opened (idempotent)."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            scoped = [_scoped_id(p, s) for p, ids in self._open.items() for s in ids]
            self._open.clear()
            self._turns.clear()
        for session_id in scoped:
            await self.manager.drop(session_id)
