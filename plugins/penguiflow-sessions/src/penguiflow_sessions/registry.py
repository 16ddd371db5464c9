"""`TaskRegistry`: the tasks of a session, in memory, with their parent/child links.

The registry is the session's source of truth for task state; each change is handed to an
optional `persist_task` callback (the session's state store) after it is made. Everything
runs on one event loop and no method awaits between reading and writing its dicts, so no
lock is needed: a change is atomic with respect to other coroutines.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from penguiflow.errors import UnknownNameError, UsageError

from .models import TaskContextSnapshot, TaskState, TaskStatus, TaskType

__all__ = ["ACTIVE_STATUSES", "TaskRegistry"]

#: Statuses of a task that has not ended (it counts against the session's limits).
ACTIVE_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.PAUSED})

PersistTask = Callable[[TaskState], Awaitable[None]]


class TaskRegistry:
    """Tasks by id and by session, and which task spawned which."""

    def __init__(self, *, persist_task: PersistTask | None = None) -> None:
        self._tasks: dict[str, TaskState] = {}
        self._by_session: dict[str, list[str]] = {}
        self._children: dict[str, list[str]] = {}
        self._parent: dict[str, str] = {}
        self._persist_task = persist_task

    def _index(self, state: TaskState) -> None:
        self._tasks[state.task_id] = state
        ids = self._by_session.setdefault(state.session_id, [])
        if state.task_id not in ids:
            ids.append(state.task_id)
        parent = state.context_snapshot.spawned_from_task_id if state.context_snapshot else None
        if parent and parent != state.task_id:
            self._parent[state.task_id] = parent
            children = self._children.setdefault(parent, [])
            if state.task_id not in children:
                children.append(state.task_id)

    async def _persist(self, state: TaskState) -> None:
        if self._persist_task is not None:
            await self._persist_task(state)

    async def create_task(
        self,
        *,
        session_id: str,
        task_type: TaskType,
        priority: int,
        context_snapshot: TaskContextSnapshot,
        description: str | None = None,
        trace_id: str | None = None,
        task_id: str | None = None,
    ) -> TaskState:
        """Register a new PENDING task and persist it; `UsageError` when `task_id` is taken."""
        task_id = task_id or secrets.token_hex(8)
        if task_id in self._tasks:
            raise UsageError(
                f"task id {task_id!r} is already registered in session "
                f"{self._tasks[task_id].session_id!r}; pass a new task_id or none (one is made)"
            )
        state = TaskState(
            task_id=task_id,
            session_id=session_id,
            status=TaskStatus.PENDING,
            task_type=task_type,
            priority=priority,
            context_snapshot=context_snapshot,
            trace_id=trace_id,
            description=description,
        )
        self._index(state)
        await self._persist(state)
        return state

    async def get_task(self, task_id: str) -> TaskState | None:
        """The task, or None when the id is unknown."""
        return self._tasks.get(task_id)

    def require(self, task_id: str) -> TaskState:
        """The task, or `UnknownNameError` naming the id and the known ones."""
        state = self._tasks.get(task_id)
        if state is None:
            known = sorted(self._tasks)
            shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            raise UnknownNameError(
                f"unknown task id {task_id!r}; known task ids: [{shown}] "
                "(list them with list_tasks())"
            )
        return state

    async def list_tasks(
        self, session_id: str, *, status: TaskStatus | None = None
    ) -> list[TaskState]:
        """The session's tasks in creation order, optionally only those with `status`."""
        tasks = [self._tasks[t] for t in self._by_session.get(session_id, []) if t in self._tasks]
        if status is None:
            return tasks
        return [task for task in tasks if task.status == status]

    async def list_active(self, session_id: str) -> list[TaskState]:
        """The session's tasks that have not ended."""
        return [t for t in await self.list_tasks(session_id) if t.status in ACTIVE_STATUSES]

    async def update_status(self, task_id: str, status: TaskStatus) -> TaskState | None:
        """Set a task's status; None when the id is unknown."""
        return await self.update_task(task_id, status=status)

    async def update_task(
        self,
        task_id: str,
        *,
        status: TaskStatus | None = None,
        result: Any | None = None,
        error: str | None = None,
        trace_id: str | None = None,
        priority: int | None = None,
        progress: dict[str, Any] | None = None,
    ) -> TaskState | None:
        """Change the given fields of a task and persist it; None when the id is unknown."""
        task = self._tasks.get(task_id)
        if task is None:
            return None
        if status is not None:
            task.update_status(status)
        if result is not None:
            task.result = result
        if error is not None:
            task.error = error
        if trace_id is not None:
            task.trace_id = trace_id
        if priority is not None:
            task.priority = priority
        if progress is not None:
            task.progress = dict(progress)
        task.updated_at = datetime.now(UTC)
        await self._persist(task)
        return task

    async def update_priority(self, task_id: str, priority: int) -> TaskState | None:
        """Set a task's priority; None when the id is unknown."""
        return await self.update_task(task_id, priority=priority)

    async def remove_task(self, task_id: str) -> None:
        """Forget a task (in memory only: the store keeps its record)."""
        task = self._tasks.pop(task_id, None)
        if task is None:
            return
        ids = self._by_session.get(task.session_id)
        if ids is not None and task_id in ids:
            ids.remove(task_id)
        parent = self._parent.pop(task_id, None)
        if parent is not None and task_id in self._children.get(parent, []):
            self._children[parent].remove(task_id)

    async def seed_tasks(self, tasks: Iterable[TaskState]) -> None:
        """Load tasks read back from a store (hydration); nothing is persisted again."""
        for task in tasks:
            self._index(task)

    async def get_parent(self, task_id: str) -> str | None:
        """The id of the task that spawned `task_id`, if any."""
        return self._parent.get(task_id)

    async def list_children(self, task_id: str) -> list[str]:
        """Ids of the tasks spawned by `task_id`, in spawn order."""
        return list(self._children.get(task_id, []))
