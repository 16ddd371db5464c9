"""The session's shared context (versions, hashes, snapshots, patches) and its task groups.

Mixed into `StreamingSession`; the attributes declared below are set by it.

Versioning: every change of the context bumps `context_version` and recomputes
`context_hash`. A task's snapshot records both; the patch it returns carries them back, and a
patch whose version or hash no longer matches is *diverged*: flagged (and a warning is
published) by default, refused with `ContextDivergedError` when asked (`if_diverged=
"refuse"`). `update_context(expected_version=...)` refuses a write based on a stale version.

Persistence: every change saves the context document (`_context_state.py`) through the state
store, so `hydrate()` after a restart finds the context, its version and hash, the merged
background results and the patches awaiting approval. Saves go through one writer per session
that always writes the newest document, so the store never ends on an older one; the async
mutators wait for it, the synchronous `update_context` leaves it to `close()`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any, Literal

from penguiflow_planner.trajectory import BackgroundTaskResult, extract_background_results

from penguiflow.errors import ConfigurationError, describe_exception

from ._context import background_result, context_hash, json_copy
from ._context_state import context_document, restore_context
from ._errors import ContextDivergedError, TaskLimitExceededError
from ._groups import GroupBook
from .models import (
    ContextPatch,
    GroupReportStrategy,
    GroupStatus,
    MergeStrategy,
    PendingContextPatch,
    SessionContext,
    SessionLimits,
    TaskContextSnapshot,
    TaskGroup,
    TaskStatus,
    TaskType,
    UpdateType,
)

if TYPE_CHECKING:
    from .persistence import SessionStateStore
    from .registry import TaskRegistry
    from .steering import SteeringEvent

__all__ = ["SessionContextMixin"]

_LOGGER = logging.getLogger("penguiflow_sessions.session")


class SessionContextMixin:
    session_id: str
    _limits: SessionLimits
    _registry: TaskRegistry
    _foreground_task_id: str | None
    _state_store: SessionStateStore

    if TYPE_CHECKING:
        # Provided by StreamingSession or the other mixin; declared for the type checker.
        async def _publish_for(
            self, task_id: str, kind: UpdateType, content: Any, trace_id: str | None = None
        ) -> None: ...

        async def cancel_task(self, task_id: str, *, reason: str | None = None) -> bool: ...

        async def _emit_group_telemetry(self, group: TaskGroup) -> None: ...

    def _init_context(self) -> None:
        self._context = SessionContext()
        self._pending_patches: dict[str, PendingContextPatch] = {}
        self._groups = GroupBook(self.session_id)
        self._current_turn_id: str | None = None
        self._continuations: dict[str, asyncio.Task[None]] = {}
        # The newest context document not yet handed to the store, and the task writing it.
        self._context_unsaved: dict[str, Any] | None = None
        self._context_saver: asyncio.Task[None] | None = None
        self._context_sealed = False  # set by close() after the last save

    # -- saving and restoring -------------------------------------------------------------------

    def _context_changed(self) -> asyncio.Task[None] | None:
        """Take the document of the context as it is now and queue it for saving; returns
        the writer task (None without a running loop, when `close()` writes it, or after
        `close()`, when nothing is saved any more)."""
        if self._context_sealed:
            return None
        self._context_unsaved = context_document(
            self._context, self._pending_patches, self._groups.list()
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._start_context_saver()

    def _start_context_saver(self) -> asyncio.Task[None]:
        if self._context_saver is None or self._context_saver.done():
            self._context_saver = asyncio.create_task(
                self._drain_context_saves(), name=f"session:{self.session_id}:context"
            )
        return self._context_saver

    async def _save_context(self) -> None:
        saver = self._context_changed()
        if saver is not None:
            # Shielded: a cancelled caller must not stop a save other changes wait on.
            await asyncio.shield(saver)

    async def _drain_context_saves(self) -> None:
        # One writer and only the newest document: saves can neither reorder nor leave the
        # store on an older context than the one in memory.
        save = getattr(self._state_store, "save_context", None)
        while self._context_unsaved is not None:
            document, self._context_unsaved = self._context_unsaved, None
            if save is None:
                continue  # a store written before contexts were saved: memory only
            try:
                await save(self.session_id, document)
            except Exception as exc:
                _LOGGER.error(
                    "session %s: saving the context (version %s) failed, so a restart would "
                    "lose it: %s",
                    self.session_id,
                    document.get("version"),
                    describe_exception(exc),
                )

    async def _flush_context_saves(self, *, final: bool = False) -> None:
        """Wait until the newest context document is saved; with `final` (from `close()`),
        later changes stay in memory (the store may be closed next)."""
        if self._context_unsaved is not None:
            self._start_context_saver()
        while self._context_saver is not None and not self._context_saver.done():
            await asyncio.shield(self._context_saver)
        if final:
            self._context_sealed = True

    async def _restore_context(self) -> None:
        """Load the saved context (`hydrate()`), unless this session already changed its
        own: that one is newer, and saving it replaces what was stored."""
        load = getattr(self._state_store, "load_context", None)
        if load is None or self._context_saver is not None or self._context_unsaved is not None:
            return
        document = await load(self.session_id)
        if document is None:
            return
        try:
            context, pending, groups = restore_context(document)
        except ConfigurationError as exc:
            _LOGGER.error(
                "session %s: the saved context cannot be read, so it starts empty: %s",
                self.session_id,
                describe_exception(exc),
            )
            return
        self._context, self._pending_patches = context, pending
        self._groups.restore(groups)

    # -- context ------------------------------------------------------------------------------

    @property
    def context_version(self) -> int:
        return self._context.version

    @property
    def context_hash(self) -> str | None:
        return self._context.context_hash

    @property
    def pending_patches(self) -> dict[str, PendingContextPatch]:
        return dict(self._pending_patches)

    def get_context(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Copies of `(llm_context, tool_context)`."""
        return dict(self._context.llm_context), dict(self._context.tool_context)

    def get_background_results(self) -> dict[str, BackgroundTaskResult]:
        return dict(self._context.background_results)

    def update_context(
        self,
        *,
        llm_context: dict[str, Any] | None = None,
        tool_context: dict[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> int:
        """Replace the given parts of the context; returns the new version.

        Background results found in `llm_context` move to the session's own store of them.
        With `expected_version`, a context that changed since raises `ContextDivergedError`
        and nothing changes."""
        if expected_version is not None and expected_version != self._context.version:
            raise ContextDivergedError(
                f"session {self.session_id!r} context is at version {self._context.version}, "
                f"not the expected {expected_version}; read it again (get_context(), "
                "context_version) and reapply your change"
            )
        for name, value in (("llm_context", llm_context), ("tool_context", tool_context)):
            if value is not None and not isinstance(value, dict):
                raise ConfigurationError(f"{name} must be a dict or None, got {type(value)}")
        if llm_context is not None:
            cleaned, found = extract_background_results(llm_context)
            self._context.llm_context = dict(cleaned or {})
            self._context.background_results.update(found)
        if tool_context is not None:
            self._context.tool_context = dict(tool_context)
        self._context.version += 1
        self._context.context_hash = context_hash(self._context.llm_context)
        self._context_changed()
        return self._context.version

    async def mark_background_consumed(self, *, task_ids: list[str]) -> int:
        """Forget the background results of `task_ids`; returns how many were removed."""
        removed = 0
        for task_id in set(task_ids):
            if self._context.background_results.pop(task_id, None) is not None:
                removed += 1
        if removed:
            await self._save_context()
        return removed

    def _snapshot_for(
        self,
        *,
        task_id: str,
        given: TaskContextSnapshot | None,
        trace_id: str | None,
        spawn_reason: str | None,
        task_type: TaskType,
        query: str | None,
        parent_task_id: str | None,
        spawned_from_event_id: str | None,
        propagate_on_cancel: Literal["cascade", "isolate"],
        notify_on_complete: bool,
    ) -> TaskContextSnapshot:
        fixed: dict[str, Any] = {
            "session_id": self.session_id,
            "task_id": task_id,
            "propagate_on_cancel": propagate_on_cancel,
            "notify_on_complete": notify_on_complete,
        }
        if given is not None:
            return given.model_copy(update=fixed)
        ctx = self._context
        if task_type is TaskType.BACKGROUND:
            # A background task outlives this turn: give it its own JSON copy.
            llm = json_copy(ctx.llm_context) or {}
            tools = json_copy(ctx.tool_context) or {}
            memory = json_copy(ctx.memory) or {}
            artifacts = json_copy(ctx.artifacts) or []
        else:
            llm, tools = dict(ctx.llm_context), dict(ctx.tool_context)
            memory, artifacts = dict(ctx.memory), list(ctx.artifacts)
        if ctx.background_results:
            llm = dict(llm)
            llm["background_results"] = [r.to_dict() for r in ctx.background_results.values()]
        return TaskContextSnapshot(
            trace_id=trace_id,
            spawned_from_task_id=parent_task_id or self._foreground_task_id or "foreground",
            spawned_from_event_id=spawned_from_event_id,
            spawn_reason=spawn_reason,
            query=query,
            context_version=ctx.version,
            context_hash=ctx.context_hash,
            llm_context=llm,
            tool_context=tools,
            memory=memory,
            artifacts=artifacts,
            session_id=self.session_id,
            task_id=task_id,
            propagate_on_cancel=propagate_on_cancel,
            notify_on_complete=notify_on_complete,
        )

    # -- patches --------------------------------------------------------------------------------

    def is_diverged(self, patch: ContextPatch) -> bool:
        """Whether the context changed since the snapshot `patch` was made from."""
        ctx = self._context
        if patch.source_context_version is not None and patch.source_context_version != ctx.version:
            return True
        return bool(patch.source_context_hash and patch.source_context_hash != ctx.context_hash)

    async def apply_context_patch(
        self,
        *,
        patch: ContextPatch,
        strategy: MergeStrategy = MergeStrategy.APPEND,
        payload: Any | None = None,
        group_id: str | None = None,
        if_diverged: Literal["flag", "refuse"] = "flag",
    ) -> str | None:
        """Merge a task's patch per `strategy`; returns the patch id when it waits for
        approval (HUMAN_GATED), else None.

        A diverged patch is flagged (`context_diverged`, and a warning notification) or, with
        `if_diverged="refuse"`, refused with `ContextDivergedError` and no change."""
        strategy = MergeStrategy(strategy)
        diverged = self.is_diverged(patch)
        if diverged and if_diverged == "refuse":
            raise ContextDivergedError(
                f"patch of task {patch.task_id!r} was made from context version "
                f"{patch.source_context_version} (hash {patch.source_context_hash}), but the "
                f"session is at version {self._context.version} (hash "
                f"{self._context.context_hash}); rerun the task on the current context or "
                "apply it with if_diverged='flag'"
            )
        if diverged and not patch.context_diverged:
            patch = patch.model_copy(update={"context_diverged": True})
        if strategy is MergeStrategy.HUMAN_GATED:
            if len(self._pending_patches) >= self._limits.max_pending_patches:
                raise TaskLimitExceededError(
                    f"pending_patch_limit_exceeded: session {self.session_id!r} already has "
                    f"{len(self._pending_patches)} patches awaiting approval "
                    f"(SessionLimits.max_pending_patches={self._limits.max_pending_patches}); "
                    "approve or reject some first"
                )
            patch_id = secrets.token_hex(8)
            self._pending_patches[patch_id] = PendingContextPatch(
                patch_id=patch_id, task_id=patch.task_id, patch=patch, strategy=strategy
            )
            # Saved before it is announced: a client that saw the checkpoint can approve it
            # even after a restart.
            await self._save_context()
            await self._publish_for(
                patch.task_id,
                UpdateType.CHECKPOINT,
                {
                    "kind": "context_patch",
                    "patch_id": patch_id,
                    "task_id": patch.task_id,
                    "digest": list(patch.digest),
                    "diverged": patch.context_diverged,
                    "prompt": "Apply background results to the conversation?",
                    "options": ["approve", "reject"],
                },
            )
            return patch_id
        result = background_result(patch, payload=payload, group_id=group_id)
        self._context.background_results[result.task_id] = result
        await self._save_context()
        if diverged:
            await self._publish_for(
                patch.task_id,
                UpdateType.NOTIFICATION,
                {
                    "severity": "warning",
                    "title": "Context changed",
                    "body": "Background results were produced from an older context.",
                    "actions": [],
                },
            )
        return None

    async def apply_pending_patch(
        self, *, patch_id: str, strategy: MergeStrategy | None = None
    ) -> bool:
        """Merge an approved pending patch; False when no patch `patch_id` is pending."""
        pending = self._pending_patches.pop(patch_id, None)
        if pending is None:
            return False
        await self.apply_context_patch(
            patch=pending.patch, strategy=strategy or MergeStrategy.APPEND
        )
        await self._publish_for(
            pending.task_id,
            UpdateType.NOTIFICATION,
            {
                "severity": "info",
                "title": "Context updated",
                "body": "Background results applied to the conversation.",
                "actions": [],
            },
        )
        return True

    async def _reject_pending_patch(self, patch_id: str, event: SteeringEvent) -> bool:
        pending = self._pending_patches.pop(patch_id, None)
        if pending is None:
            return False
        await self._save_context()
        await self._publish_for(
            pending.task_id,
            UpdateType.NOTIFICATION,
            {
                "severity": "warning",
                "title": "Context patch rejected",
                "body": "Background results were not applied.",
                "actions": [],
            },
            event.trace_id,
        )
        return True

    # -- groups -----------------------------------------------------------------------------------

    def set_turn_id(self, turn_id: str | None) -> None:
        """The current foreground turn (group names resolve within a turn)."""
        self._current_turn_id = turn_id

    async def resolve_or_create_group(
        self,
        *,
        group_name: str | None = None,
        group_id: str | None = None,
        turn_id: str | None = None,
        merge_strategy: MergeStrategy | None = None,
        report_strategy: GroupReportStrategy | None = None,
        retain_turn: bool = False,
    ) -> TaskGroup:
        """The open group `group_id` (`UnknownNameError`/`UsageError` otherwise), else the
        open group named `group_name` in `turn_id`, else a new group."""
        if group_id is not None:
            return self._groups.require_open(group_id)
        if group_name is not None:
            found = self._groups.find_open(group_name, turn_id)
            if found is not None:
                return found
        group = self._groups.create(
            name=group_name,
            turn_id=turn_id,
            merge_strategy=merge_strategy,
            report_strategy=report_strategy,
            retain_turn=retain_turn,
        )
        self._context_changed()  # groups are saved with the context
        return group

    async def add_task_to_group(self, group_id: str, task_id: str) -> bool:
        """Add a known task to an open group; False when the group is unknown or not open."""
        group = self._groups.groups.get(group_id)
        if group is None or group.status != "open":
            return False
        self._registry.require(task_id)
        if task_id not in group.task_ids:
            group.task_ids.append(task_id)
            self._context_changed()
        return True

    async def seal_group(self, group_id: str) -> bool:
        """Seal an open group (it takes no more tasks); False when it was not open."""
        group = self._groups.require(group_id)
        if not self._groups.seal(group):
            return False
        await self._settle(group)
        self._context_changed()
        return True

    async def auto_seal_open_groups(self, turn_id: str | None = None) -> int:
        """Seal the open groups of `turn_id` (default: the current turn); returns how many."""
        target = turn_id if turn_id is not None else self._current_turn_id
        count = 0
        for group in self._groups.list("open"):
            if group.turn_id == target and await self.seal_group(group.group_id):
                count += 1
        return count

    async def get_group(
        self,
        group_id: str | None = None,
        *,
        group_name: str | None = None,
        turn_id: str | None = None,
    ) -> TaskGroup | None:
        if group_id is not None:
            return self._groups.groups.get(group_id)
        if group_name is not None:
            return self._groups.find(group_name, turn_id)
        return None

    async def list_groups(self, *, status: GroupStatus | None = None) -> list[TaskGroup]:
        return self._groups.list(status)

    async def mark_task_complete_in_group(
        self,
        group_id: str,
        task_id: str,
        *,
        success: bool,
        patch: ContextPatch | None = None,
        patch_id: str | None = None,
    ) -> None:
        """Record that a task of the group ended; the group settles when it can."""
        group = self._groups.require(group_id)
        self._groups.record(group, task_id, success=success)
        if patch_id is not None and patch_id not in group.patches:
            group.patches.append(patch_id)
        await self._settle(group)
        self._context_changed()

    async def _settle(self, group: TaskGroup) -> None:
        if not self._groups.settle(group):
            return
        await self._group_ended(group)

    async def _group_ended(self, group: TaskGroup) -> None:
        await self._emit_group_telemetry(group)
        if group.report_strategy == "none" or group.report_queued:
            return
        group.report_queued = True
        counts = {
            "group_id": group.group_id,
            "group_name": group.name,
            "status": group.status,
            "task_count": len(group.task_ids),
            "completed_count": len(group.completed_task_ids),
            "failed_count": len(group.failed_task_ids),
        }
        if group.merge_strategy is MergeStrategy.HUMAN_GATED and group.patches:
            content = dict(counts, kind="group_approval", patch_ids=list(group.patches))
            content.update(
                prompt=f"Task group '{group.name}' is done. Apply its results?",
                options=["approve", "reject"],
            )
            await self._publish_for(group.group_id, UpdateType.CHECKPOINT, content)
            return
        body = (
            f"{counts['completed_count']} of {counts['task_count']} tasks completed, "
            f"{counts['failed_count']} failed."
        )
        await self._publish_for(
            group.group_id,
            UpdateType.NOTIFICATION,
            {
                "severity": "info" if group.status == "complete" else "warning",
                "title": f"Task group '{group.name}' {group.status}",
                "body": body,
                "actions": [],
                **counts,
            },
        )

    async def wait_for_group_completion(
        self, group_id: str, *, timeout_s: float | None = None
    ) -> tuple[TaskGroup | None, bool]:
        """Wait for the group to end: `(group, timed_out)`; `(None, False)` if unknown."""
        group = self._groups.groups.get(group_id)
        if group is None:
            return None, False
        timed_out = await self._groups.wait(group, timeout_s)
        return group, timed_out

    async def get_group_results(self, group_id: str) -> list[dict[str, Any]]:
        """`{task_id, digest, facts}` of each completed task of the group."""
        group = self._groups.require(group_id)
        results: list[dict[str, Any]] = []
        for task_id in group.completed_task_ids:
            state = await self._registry.get_task(task_id)
            if state is None or state.result is None:
                continue
            value = state.result
            results.append(
                {
                    "task_id": task_id,
                    "digest": value.get("digest") if isinstance(value, dict) else str(value),
                    "facts": value.get("facts") if isinstance(value, dict) else {},
                }
            )
        return results

    async def cancel_group(
        self, group_id: str, *, reason: str | None = None, propagate: bool = True
    ) -> bool:
        """End a group as failed and (with `propagate`) cancel its unfinished tasks; False
        when it had already ended."""
        group = self._groups.require(group_id)
        if group.status in ("complete", "failed"):
            return False
        pending = list(group.pending_task_ids)
        self._groups.finish(group, "failed")
        self._context_changed()
        if propagate:
            for task_id in pending:
                state = await self._registry.get_task(task_id)
                if state is not None and state.status not in (
                    TaskStatus.COMPLETE,
                    TaskStatus.FAILED,
                    TaskStatus.CANCELLED,
                ):
                    await self.cancel_task(task_id, reason=reason or "group_cancelled")
        await self._group_ended(group)
        return True

    async def apply_group_patches(
        self,
        group_id: str,
        *,
        action: Literal["apply", "reject"] = "apply",
        strategy: MergeStrategy | None = None,
    ) -> bool:
        """Apply or reject every pending patch of the group at once."""
        if action not in ("apply", "reject"):
            raise ConfigurationError(f"action must be 'apply' or 'reject', got {action!r}")
        group = self._groups.require(group_id)
        rejected = False
        for patch_id in list(group.patches):
            if patch_id not in self._pending_patches:
                continue
            if action == "apply":
                await self.apply_pending_patch(patch_id=patch_id, strategy=strategy)
            else:
                rejected = self._pending_patches.pop(patch_id, None) is not None or rejected
        if rejected:
            await self._save_context()
        group.patches.clear()
        return True

    def schedule_group_continuation(
        self, *, group_id: str, timeout_s: float | None, max_hops: int, cooldown_s: float
    ) -> None:
        """Keep waiting for a group in the background after a retained turn timed out."""
        if max_hops <= 0:
            return
        group = self._groups.require(group_id)
        current = self._continuations.get(group_id)
        if current is not None and not current.done():
            return

        async def keep_waiting() -> None:
            for hop in range(max_hops):
                if not await self._groups.wait(group, timeout_s):
                    return
                if cooldown_s > 0 and hop + 1 < max_hops:
                    await asyncio.sleep(cooldown_s)  # a pause between tries, not a sync

        self._continuations[group_id] = asyncio.create_task(keep_waiting())
