"""`InMemoryStateStore`: the embedded state store (events, bindings), safe under concurrency."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

from ._models import RemoteBinding, StoredEvent

__all__ = ["InMemoryStateStore"]


class InMemoryStateStore:
    """Keeps everything in process memory; saving an identical event twice stores it once."""

    def __init__(self) -> None:
        self._events: dict[str | None, list[StoredEvent]] = {}
        self._bindings: list[RemoteBinding] = []
        self._memory: dict[str, dict[str, Any]] = {}
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
        if trace_id is None and context_id is None:
            raise ValueError("find_binding needs trace_id or context_id")
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
