"""Task-group bookkeeping for a session: lookup, membership, sealing and completion.

Only state lives here; the session does what a change implies (telemetry, reports,
cancelling tasks). Lifecycle: `open` (takes tasks) -> `sealed` (takes none, waits) ->
`complete` when every task succeeded, `failed` when one failed or the group was cancelled.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from penguiflow.errors import ConfigurationError, UnknownNameError, UsageError

from .models import GroupReportStrategy, GroupStatus, MergeStrategy, TaskGroup

__all__ = ["GroupBook"]

_REPORTS = ("all", "any", "none")
_STATUSES = ("open", "sealed", "complete", "failed")


class GroupBook:
    """The groups of one session, by id."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.groups: dict[str, TaskGroup] = {}
        self._done: dict[str, asyncio.Event] = {}

    def require(self, group_id: str) -> TaskGroup:
        """The group, or `UnknownNameError` naming the id and the known ones."""
        group = self.groups.get(group_id)
        if group is None:
            raise UnknownNameError(
                f"unknown task group {group_id!r} in session {self.session_id!r}; known "
                f"groups: {sorted(self.groups)} (list them with list_groups())"
            )
        return group

    def require_open(self, group_id: str) -> TaskGroup:
        """The group if it still takes tasks; `UsageError` saying why not otherwise."""
        group = self.require(group_id)
        if group.status != "open":
            raise UsageError(
                f"task group {group.name!r} ({group_id}) is {group.status} and takes no new "
                "tasks; start a new group (resolve_or_create_group) for more work"
            )
        return group

    def create(
        self,
        *,
        name: str | None,
        turn_id: str | None,
        merge_strategy: MergeStrategy | None,
        report_strategy: GroupReportStrategy | None,
        retain_turn: bool,
    ) -> TaskGroup:
        if report_strategy is not None and report_strategy not in _REPORTS:
            raise ConfigurationError(
                f"report_strategy must be one of {list(_REPORTS)}, got {report_strategy!r}"
            )
        group = TaskGroup(
            name=name or f"group_{len(self.groups) + 1}",
            session_id=self.session_id,
            merge_strategy=MergeStrategy(merge_strategy or MergeStrategy.APPEND),
            report_strategy=report_strategy or "all",
            retain_turn=retain_turn,
            turn_id=turn_id,
        )
        self.groups[group.group_id] = group
        return group

    def restore(self, groups: list[TaskGroup]) -> None:
        """Take the groups saved before a restart (those this process made win)."""
        for group in groups:
            if group.group_id in self.groups:
                continue
            self.groups[group.group_id] = group
            if group.status in ("complete", "failed"):
                self._done.setdefault(group.group_id, asyncio.Event()).set()

    def find_open(self, name: str, turn_id: str | None) -> TaskGroup | None:
        """The open group called `name` created in `turn_id` (names are per turn)."""
        for group in self.groups.values():
            if group.name == name and group.status == "open" and group.turn_id == turn_id:
                return group
        return None

    def find(self, name: str, turn_id: str | None) -> TaskGroup | None:
        for group in self.groups.values():
            if group.name == name and (turn_id is None or group.turn_id == turn_id):
                return group
        return None

    def list(self, status: GroupStatus | None = None) -> list[TaskGroup]:
        if status is not None and status not in _STATUSES:
            raise ConfigurationError(f"status must be one of {list(_STATUSES)}, got {status!r}")
        return [g for g in self.groups.values() if status is None or g.status == status]

    def group_of(self, task_id: str) -> TaskGroup | None:
        for group in self.groups.values():
            if task_id in group.task_ids:
                return group
        return None

    def seal(self, group: TaskGroup) -> bool:
        """Seal an open group; False when it was not open."""
        if group.status != "open":
            return False
        group.status = "sealed"
        group.sealed_at = datetime.now(UTC)
        return True

    def record(self, group: TaskGroup, task_id: str, *, success: bool) -> None:
        ended = group.completed_task_ids if success else group.failed_task_ids
        if task_id not in group.completed_task_ids and task_id not in group.failed_task_ids:
            ended.append(task_id)

    def settle(self, group: TaskGroup) -> bool:
        """Close a sealed group whose tasks all ended; True when this call closed it."""
        if group.status != "sealed" or group.pending_task_ids:
            return False
        self.finish(group, "failed" if group.failed_task_ids else "complete")
        return True

    def finish(self, group: TaskGroup, status: GroupStatus) -> None:
        group.status = status
        group.completed_at = datetime.now(UTC)
        self._done.setdefault(group.group_id, asyncio.Event()).set()

    async def wait(self, group: TaskGroup, timeout_s: float | None) -> bool:
        """Wait for the group to end; True when `timeout_s` passed first."""
        if group.status in ("complete", "failed"):
            return False
        event = self._done.setdefault(group.group_id, asyncio.Event())
        if timeout_s is None:
            await event.wait()
            return False
        try:
            await asyncio.wait_for(event.wait(), timeout=timeout_s)
        except TimeoutError:
            return True
        return False
