"""`InMemoryStateStore`: the embedded state store (events, bindings), safe under concurrency."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

from ._logs import SessionLogs
from ._models import RemoteBinding, StoredEvent, check_binding_query, task_id_of

__all__ = ["InMemoryStateStore"]


class InMemoryStateStore(SessionLogs):
    """Keeps everything in process memory; saving an identical event twice stores it once.

    Implements every optional capability except planner events and artifacts."""

    def __init__(self) -> None:
        self._events: dict[str | None, list[StoredEvent]] = {}
        self._bindings: list[RemoteBinding] = []
        self._memory: dict[str, dict[str, Any]] = {}
        self._planner: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self._logs: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        self._trajectories: dict[str, dict[str, Any]] = {}
        self._sequence = 0
        self._lock = asyncio.Lock()

    async def save_event(self, event: StoredEvent) -> None:
        async with self._lock:
            history = self._events.setdefault(event.trace_id, [])
            if event not in history:
                history.append(event)

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        async with self._lock:
            return sorted(self._events.get(trace_id, ()), key=lambda e: e.ts)

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        async with self._lock:
            for index, existing in enumerate(self._bindings):
                if (existing.trace_id, existing.task_id) == (binding.trace_id, binding.task_id):
                    self._bindings[index] = binding
                    return
            self._bindings.append(binding)

    async def find_binding(
        self, *, trace_id: str | None = None, context_id: str | None = None
    ) -> RemoteBinding | None:
        check_binding_query(trace_id, context_id)
        async with self._lock:
            for binding in reversed(self._bindings):
                if (trace_id is None or binding.trace_id == trace_id) and (
                    context_id is None or binding.context_id == context_id
                ):
                    return binding
        return None

    async def list_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        async with self._lock:
            return [b for b in self._bindings if b.trace_id == trace_id]

    async def mark_binding_terminal(self, *, trace_id: str, task_id: str) -> None:
        async with self._lock:
            for binding in self._bindings:
                if binding.trace_id == trace_id and binding.task_id == task_id:
                    binding.is_terminal = True

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        async with self._lock:
            self._memory[key] = copy.deepcopy(state)

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        async with self._lock:
            state = self._memory.get(key)
            return copy.deepcopy(state) if state is not None else None

    # -- planner pause state (single-use tokens) --------------------------------------------

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        async with self._lock:
            self._planner[token] = copy.deepcopy(payload)

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        async with self._lock:
            state = self._planner.get(token)
            return copy.deepcopy(state) if state is not None else None

    async def consume_planner_state(self, token: str) -> dict[str, Any] | None:
        async with self._lock:
            return self._planner.pop(token, None)

    # -- sessions: tasks, task updates, steering ---------------------------------------------

    async def save_task(self, session_id: str, task: dict[str, Any]) -> None:
        task_id = task_id_of(task)
        async with self._lock:
            self._tasks.setdefault(session_id, {})[task_id] = copy.deepcopy(task)

    async def list_tasks(self, session_id: str) -> Sequence[dict[str, Any]]:
        async with self._lock:
            return copy.deepcopy(list(self._tasks.get(session_id, {}).values()))

    async def _append(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        async with self._lock:
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

    async def _read_log(self, log: str, scope: str, since_id: str | None) -> list[dict[str, Any]]:
        after = int(since_id) if since_id is not None else 0
        async with self._lock:
            return [
                {**copy.deepcopy(entry), "id": entry_id}
                for entry_id, entry in self._logs.get((log, scope), [])
                if int(entry_id) > after
            ]

    # -- trajectories --------------------------------------------------------------------------

    async def save_trajectory(self, trace_id: str, trajectory: dict[str, Any]) -> None:
        async with self._lock:
            self._trajectories[trace_id] = copy.deepcopy(trajectory)

    async def get_trajectory(self, trace_id: str) -> dict[str, Any] | None:
        async with self._lock:
            trajectory = self._trajectories.get(trace_id)
            return copy.deepcopy(trajectory) if trajectory is not None else None
