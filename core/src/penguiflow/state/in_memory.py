"""`InMemoryStateStore`: the embedded state store (events, bindings), safe under concurrency."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

from ..resources import AsyncResource
from ._errors import StoreClosedError
from ._logs import SessionLogs
from ._models import AuditRecord, RemoteBinding, StoredEvent
from ._rules import check_audit_query, check_binding_query, select_audit, task_id_of

__all__ = ["InMemoryStateStore"]


class InMemoryStateStore(SessionLogs, AsyncResource):
    """Keeps everything in process memory; saving an identical event twice stores it once.

    Implements every optional capability except planner events and artifacts. `aclose()`
    drops the data; afterwards every call raises `StoreClosedError`."""

    def __init__(self) -> None:
        self._events: dict[str | None, list[StoredEvent]] = {}
        self._bindings: list[RemoteBinding] = []
        self._memory: dict[str, dict[str, Any]] = {}
        self._planner: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self._logs: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        self._trajectories: dict[str, dict[str, Any]] = {}
        self._audit: dict[str, AuditRecord] = {}  # by id, in save order
        self._sequence = 0
        self._lock = asyncio.Lock()
        self._closed = False

    def _open(self) -> asyncio.Lock:
        """The lock every operation holds; checked here so no operation runs once closed."""
        if self._closed:
            raise StoreClosedError(self)
        return self._lock

    async def aclose(self) -> None:
        """Drop everything the store holds (idempotent); later calls raise StoreClosedError."""
        if self._closed:
            return
        self._closed = True  # first, so nothing starts while we wait for running operations
        async with self._lock:
            self._events.clear()
            self._bindings.clear()
            self._memory.clear()
            self._planner.clear()
            self._tasks.clear()
            self._logs.clear()
            self._trajectories.clear()
            self._audit.clear()

    async def save_event(self, event: StoredEvent) -> None:
        async with self._open():
            history = self._events.setdefault(event.trace_id, [])
            if event not in history:
                history.append(event)

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        async with self._open():
            return sorted(self._events.get(trace_id, ()), key=lambda e: e.ts)

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        async with self._open():
            for index, existing in enumerate(self._bindings):
                if (existing.trace_id, existing.task_id) == (binding.trace_id, binding.task_id):
                    self._bindings[index] = binding
                    return
            self._bindings.append(binding)

    async def find_binding(
        self, *, trace_id: str | None = None, context_id: str | None = None
    ) -> RemoteBinding | None:
        check_binding_query(trace_id, context_id)
        async with self._open():
            for binding in reversed(self._bindings):
                if (trace_id is None or binding.trace_id == trace_id) and (
                    context_id is None or binding.context_id == context_id
                ):
                    return binding
        return None

    async def list_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        async with self._open():
            return [b for b in self._bindings if b.trace_id == trace_id]

    async def mark_binding_terminal(self, *, trace_id: str, task_id: str) -> None:
        async with self._open():
            for binding in self._bindings:
                if binding.trace_id == trace_id and binding.task_id == task_id:
                    binding.is_terminal = True

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        async with self._open():
            self._memory[key] = copy.deepcopy(state)

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        async with self._open():
            state = self._memory.get(key)
            return copy.deepcopy(state) if state is not None else None

    # -- planner pause state (single-use tokens) --------------------------------------------

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        async with self._open():
            self._planner[token] = copy.deepcopy(payload)

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        async with self._open():
            state = self._planner.get(token)
            return copy.deepcopy(state) if state is not None else None

    async def consume_planner_state(self, token: str) -> dict[str, Any] | None:
        async with self._open():
            return self._planner.pop(token, None)

    # -- sessions: tasks, task updates, steering ---------------------------------------------

    async def save_task(self, session_id: str, task: dict[str, Any]) -> None:
        task_id = task_id_of(task)
        async with self._open():
            self._tasks.setdefault(session_id, {})[task_id] = copy.deepcopy(task)

    async def list_tasks(self, session_id: str) -> Sequence[dict[str, Any]]:
        async with self._open():
            return copy.deepcopy(list(self._tasks.get(session_id, {}).values()))

    async def _append_log(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        async with self._open():
            entries = self._logs.setdefault((log, scope), [])
            key = entry.get(key_field)
            if key is not None:
                for entry_id, existing in entries:
                    if existing.get(key_field) == key:
                        return entry_id
            self._sequence += 1
            entry_id = str(self._sequence)
            entries.append((entry_id, copy.deepcopy(entry)))
            return entry_id

    async def _read_log(self, log: str, scope: str, after: int) -> list[dict[str, Any]]:
        async with self._open():
            return [
                {**copy.deepcopy(entry), "id": entry_id}
                for entry_id, entry in self._logs.get((log, scope), [])
                if int(entry_id) > after
            ]

    # -- trajectories --------------------------------------------------------------------------

    async def save_trajectory(self, trace_id: str, trajectory: dict[str, Any]) -> None:
        async with self._open():
            self._trajectories[trace_id] = copy.deepcopy(trajectory)

    async def get_trajectory(self, trace_id: str) -> dict[str, Any] | None:
        async with self._open():
            trajectory = self._trajectories.get(trace_id)
            return copy.deepcopy(trajectory) if trajectory is not None else None

    # -- audit trail -----------------------------------------------------------------------------

    async def save_audit(self, record: AuditRecord) -> None:
        async with self._open():
            if record.id not in self._audit:
                self._audit[record.id] = AuditRecord.from_dict(copy.deepcopy(record.to_dict()))

    async def list_audit(
        self,
        tenant: str | None,
        *,
        session_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditRecord]:
        check_audit_query(tenant, since, limit)
        async with self._open():
            chosen = select_audit(
                self._audit.values(), tenant, session_id=session_id, since=since, limit=limit
            )
            return [AuditRecord.from_dict(copy.deepcopy(r.to_dict())) for r in chosen]
