"""The session's single writer of updates: persist first, then publish, in submission order.

PenguiFlow published an update and saved it in a task of its own, so a subscriber could see
an update the store never got, and a client resuming from a cursor could miss one saved late.
Here every update goes through one FIFO drained by one coroutine: it is saved, stamped with
the cursor the store gave it (if any), and only then published. Cursor order, store order and
publish order are therefore the same.

`submit` is synchronous (a pipeline's `emit_update` is) and returns a future that resolves
to the published update, or to None when saving failed (the failure is logged: an update the
store does not hold is never published).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from penguiflow.errors import UsageError, describe_exception

from .models import StateUpdate

__all__ = ["UpdateWriter"]

_LOGGER = logging.getLogger("penguiflow_sessions.session")

Persist = Callable[[StateUpdate], Awaitable[str | None]]
Publish = Callable[[StateUpdate], object]


class UpdateWriter:
    """Persist-then-publish queue for one session's updates."""

    def __init__(self, *, persist: Persist, publish: Publish, session_id: str) -> None:
        self._persist = persist
        self._publish = publish
        self._session_id = session_id
        self._queue: deque[tuple[StateUpdate, asyncio.Future[StateUpdate | None]]] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False

    def submit(self, update: StateUpdate) -> asyncio.Future[StateUpdate | None]:
        """Queue `update`; `UsageError` once the writer is closed."""
        if self._closed:
            raise UsageError(
                f"session {self._session_id!r} is closed: cannot emit update of task "
                f"{update.task_id!r}; open a new session (SessionManager.get_or_create)"
            )
        future: asyncio.Future[StateUpdate | None] = asyncio.get_running_loop().create_future()
        self._queue.append((update, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(
                self._drain(), name=f"session:{self._session_id}:updates"
            )
        return future

    async def write(self, update: StateUpdate) -> StateUpdate | None:
        """Submit `update` and wait until it is saved and published."""
        return await self.submit(update)

    async def _drain(self) -> None:
        while self._queue:
            update, future = self._queue.popleft()
            try:
                cursor = await self._persist(update)
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as exc:
                _LOGGER.error(
                    "session %s: saving update %s (%s of task %s) failed, so it was not "
                    "published: %s",
                    self._session_id,
                    update.update_id,
                    update.update_type.value,
                    update.task_id,
                    describe_exception(exc),
                )
                if not future.done():
                    future.set_result(None)
                continue
            if cursor is not None and cursor != update.update_id:
                update = update.model_copy(update={"update_id": cursor})
            try:
                self._publish(update)
            except Exception as exc:  # a closed broker: the update is saved, only not live
                _LOGGER.warning(
                    "session %s: update %s saved but not published: %s",
                    self._session_id,
                    update.update_id,
                    describe_exception(exc),
                )
            if not future.done():
                future.set_result(update)

    async def flush(self) -> None:
        """Wait until everything submitted so far is saved and published."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)

    async def aclose(self) -> None:
        """Flush, then refuse new updates (idempotent)."""
        await self.flush()
        self._closed = True
