"""Where the server keeps its tasks: the kernel's state store, scoped per tenant.

We use the state store's `SupportsTasks` capability (`save_task` upserts by ``task_id``,
`list_tasks` reads a scope back) with one scope per tenant, so a restarted server answers
``get`` and ``list`` for tasks created before it stopped, and one tenant's scope never holds
another's tasks. Without a store, tasks live in this process only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from penguiflow.state import SupportsTasks

from ._wire import Task, TaskPushNotificationConfig, to_wire

__all__ = ["TaskRecord", "TaskStore"]

_SCOPE_PREFIX = "a2a:"


class TaskRecord:
    """A task as the server keeps it: the wire task, its tenant, its push configs and the
    executor's private state (a planner's resume token: stored, never sent on the wire)."""

    __slots__ = ("executor_state", "push_configs", "task", "tenant")

    def __init__(
        self,
        task: Task,
        tenant: str,
        push_configs: dict[str, TaskPushNotificationConfig] | None = None,
        executor_state: dict[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.tenant = tenant
        self.push_configs: dict[str, TaskPushNotificationConfig] = push_configs or {}
        self.executor_state: dict[str, Any] = executor_state or {}

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task.id,
            "tenant": self.tenant,
            "task": to_wire(self.task),
            "push_configs": [to_wire(c) for c in self.push_configs.values()],
            "executor_state": dict(self.executor_state),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        configs = [TaskPushNotificationConfig.model_validate(c) for c in data["push_configs"]]
        return cls(
            Task.model_validate(data["task"]),
            str(data["tenant"]),
            {c.id or "": c for c in configs},
            dict(data.get("executor_state") or {}),
        )


def _scope(tenant: str) -> str:
    # Percent-escaping keeps tenants apart even when a name contains the separator.
    return _SCOPE_PREFIX + quote(tenant, safe="")


class TaskStore:
    """Tasks per tenant, persisted through a `SupportsTasks` state store when one is given.

    Reads go to the in-process cache first; a task the cache lacks (written by an earlier
    server) is loaded from the store on first use.
    """

    def __init__(self, state_store: SupportsTasks | None = None) -> None:
        self._store = state_store
        self._cache: dict[tuple[str, str], TaskRecord] = {}
        self._loaded: set[str] = set()

    async def save(self, record: TaskRecord) -> None:
        self._cache[(record.tenant, record.task.id)] = record
        if self._store is not None:
            await self._store.save_task(_scope(record.tenant), record.to_json())

    async def _load_scope(self, tenant: str) -> None:
        if self._store is None or tenant in self._loaded:
            return
        self._loaded.add(tenant)
        for data in await self._store.list_tasks(_scope(tenant)):
            record = TaskRecord.from_json(dict(data))
            self._cache.setdefault((tenant, record.task.id), record)

    async def get(self, tenant: str, task_id: str) -> TaskRecord | None:
        """The tenant's task with that id, or None (also when another tenant owns it)."""
        record = self._cache.get((tenant, task_id))
        if record is None:
            await self._load_scope(tenant)
            record = self._cache.get((tenant, task_id))
        return record

    async def list(self, tenant: str) -> list[TaskRecord]:
        """The tenant's tasks, oldest first."""
        await self._load_scope(tenant)
        return [r for (t, _), r in self._cache.items() if t == tenant]
