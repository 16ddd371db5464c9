"""`SessionLogs`: the log half of the `tasks` and `steering` capabilities, for store authors.

Both capabilities keep an ordered, append-only log per session (task updates, steering
events). The log names, the field that makes an entry idempotent and the cursor rule are
fixed here, so every store that mixes this in agrees on them; the store supplies storage
through two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._rules import log_cursor

__all__ = ["SessionLogs"]


class SessionLogs:
    """Mix in to get `save_task_update`, `list_task_updates`, `save_steering` and
    `list_steering`; implement `_append_log` and `_read_log` for your storage.

    `_append_log(log, scope, entry, key_field)` appends `entry` to the log named `log`
    (`"task_updates"` or `"steering"`; persist the name as given) for the session `scope`
    and returns the new entry's id: a positive integer, as a string, larger than every id
    handed out before in that log. When `entry[key_field]` is present and an entry with the
    same value is already in that log, it stores nothing and returns the earlier entry's id.

    `_read_log(log, scope, after)` returns the entries of that log whose id is greater than
    `after` (`0` means all), oldest first, each a copy of the saved dict with its id added
    under `"id"`. The `since_id` a caller passes is checked and turned into `after` here
    (`log_cursor`), so stores never parse cursors themselves.
    """

    TASK_UPDATES = "task_updates"
    STEERING = "steering"

    async def _append_log(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        raise NotImplementedError(
            f"{type(self).__name__} mixes in SessionLogs but does not implement _append_log()"
        )

    async def _read_log(self, log: str, scope: str, after: int) -> list[dict[str, Any]]:
        raise NotImplementedError(
            f"{type(self).__name__} mixes in SessionLogs but does not implement _read_log()"
        )

    async def save_task_update(self, session_id: str, update: dict[str, Any]) -> str:
        """Append a task update; an `update_id` already saved is stored once."""
        return await self._append_log(self.TASK_UPDATES, session_id, update, "update_id")

    async def list_task_updates(
        self, session_id: str, *, since_id: str | None = None
    ) -> Sequence[dict[str, Any]]:
        """Task updates of the session after `since_id` (exclusive), oldest first."""
        return await self._read_log(self.TASK_UPDATES, session_id, log_cursor(since_id))

    async def save_steering(self, session_id: str, event: dict[str, Any]) -> str:
        """Append a steering event; an `event_id` already saved is stored once."""
        return await self._append_log(self.STEERING, session_id, event, "event_id")

    async def list_steering(
        self, session_id: str, *, since_id: str | None = None
    ) -> Sequence[dict[str, Any]]:
        """Steering events of the session after `since_id` (exclusive), oldest first."""
        return await self._read_log(self.STEERING, session_id, log_cursor(since_id))
