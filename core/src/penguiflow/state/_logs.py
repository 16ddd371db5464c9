"""The session-log half of the task and steering capabilities, shared by the stores.

A store provides `_append` and `_read_log` for its storage; the log names and the fields that
make an entry idempotent are defined once, here, so every store agrees on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["SessionLogs"]


class SessionLogs:
    """`save_task_update` / `list_task_updates` / `save_steering` / `list_steering`."""

    async def _append(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        raise NotImplementedError

    async def _read_log(self, log: str, scope: str, since_id: str | None) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def save_task_update(self, session_id: str, update: dict[str, Any]) -> str:
        return await self._append("task_updates", session_id, update, "update_id")

    async def list_task_updates(
        self, session_id: str, *, since_id: str | None = None
    ) -> Sequence[dict[str, Any]]:
        return await self._read_log("task_updates", session_id, since_id)

    async def save_steering(self, session_id: str, event: dict[str, Any]) -> str:
        return await self._append("steering", session_id, event, "event_id")

    async def list_steering(
        self, session_id: str, *, since_id: str | None = None
    ) -> Sequence[dict[str, Any]]:
        return await self._read_log("steering", session_id, since_id)
