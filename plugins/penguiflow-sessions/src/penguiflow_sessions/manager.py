"""`SessionManager`: one `StreamingSession` per session id, created (and hydrated) on demand."""

from __future__ import annotations

import asyncio
from typing import Any

from penguiflow.errors import ConfigurationError
from penguiflow.resources import AsyncResource

from .models import SessionLimits
from .persistence import SessionStateStore
from .policy import ControlPolicy
from .session import StreamingSession
from .telemetry import TaskTelemetrySink

__all__ = ["SessionManager"]


class SessionManager(AsyncResource):
    """Sessions by id, sharing one configuration (limits, store, policy, telemetry).

    `aclose()` (or `async with`) closes every session it holds; the shared store is the
    caller's to close."""

    def __init__(
        self,
        *,
        limits: SessionLimits | None = None,
        state_store: SessionStateStore | Any | None = None,
        control_policy: ControlPolicy | None = None,
        telemetry_sink: TaskTelemetrySink | None = None,
    ) -> None:
        if isinstance(state_store, str):
            # One URL would give each session a store of its own; share one object instead.
            raise ConfigurationError(
                "SessionManager needs a state store object shared by its sessions, not a URL "
                f"({state_store!r}); build it with penguiflow.plugins.resolve_driver("
                "'state_store', url) and pass that"
            )
        self._sessions: dict[str, StreamingSession] = {}
        self._lock = asyncio.Lock()
        self._limits = limits
        self._state_store = state_store
        self._control_policy = control_policy
        self._telemetry_sink = telemetry_sink

    async def get_or_create(self, session_id: str) -> StreamingSession:
        """The open session `session_id`, created and hydrated from the store if needed."""
        async with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.closed:
                session = StreamingSession(
                    session_id,
                    control_policy=self._control_policy,
                    limits=self._limits,
                    state_store=self._state_store,
                    telemetry_sink=self._telemetry_sink,
                )
                self._sessions[session_id] = session
            # Under the lock: a second caller must not get a session that is half loaded.
            await session.hydrate()
        return session

    async def get(self, session_id: str) -> StreamingSession | None:
        """The open session `session_id`, or None (nothing is created)."""
        session = self._sessions.get(session_id)
        return session if session is not None and not session.closed else None

    async def drop(self, session_id: str) -> None:
        """Close and forget session `session_id` (nothing happens when there is none)."""
        async with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            await session.close()

    def session_ids(self) -> list[str]:
        """Ids of the open sessions held."""
        return [sid for sid, s in self._sessions.items() if not s.closed]

    async def aclose(self) -> None:
        """Close every session (idempotent)."""
        async with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
