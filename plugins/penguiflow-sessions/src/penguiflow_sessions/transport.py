"""The transport contract between a session and a client, and `SessionConnection`, which
wires one to the other (updates out, steering in)."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from penguiflow.errors import describe_exception
from penguiflow.resources import aclose_resource

from .models import StateUpdate
from .steering import SteeringEvent

if TYPE_CHECKING:
    from .session import StreamingSession

__all__ = ["SessionConnection", "Transport"]

_LOGGER = logging.getLogger("penguiflow_sessions.transport")


@runtime_checkable
class Transport(Protocol):
    """A two-way channel to one client (a WebSocket, SSE plus POST, in-process queues).

    `send` delivers an update; `receive` waits for the next steering event, None once the
    client has gone; `close` releases the channel."""

    async def send(self, update: StateUpdate) -> None: ...

    async def receive(self) -> SteeringEvent | None: ...

    async def close(self) -> None: ...


class SessionConnection:
    """Forwards a session's updates to a transport and the transport's steering to the
    session while entered (`async with`). A steering event the session refuses is logged
    and the connection carries on: one bad event must not cut the client off."""

    def __init__(self, session: StreamingSession, transport: Transport) -> None:
        self._session = session
        self._transport = transport
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def __aenter__(self) -> Self:
        updates = await self._session.subscribe()

        async def forward() -> None:
            async for update in updates:
                await self._transport.send(update)

        async def receive() -> None:
            while (event := await self._transport.receive()) is not None:
                try:
                    await self._session.steer(event)
                except Exception as exc:
                    _LOGGER.warning(
                        "session %s refused steering event %s: %s",
                        self._session.session_id,
                        event.event_id,
                        describe_exception(exc),
                    )

        self._tasks = [
            asyncio.create_task(forward(), name="session:forward_updates"),
            asyncio.create_task(receive(), name="session:receive_steering"),
        ]
        return self

    async def aclose(self) -> None:
        """Stop forwarding and close the transport (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await aclose_resource(self._transport)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
