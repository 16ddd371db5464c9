"""Running a task for `StreamingSession`: its pipeline, statuses, timeout, result and telemetry.

A task's life after it is registered: it waits for a slot (`max_concurrent_tasks`), runs its
pipeline under `max_task_runtime_s`, and ends exactly once as COMPLETE (its result, context
patch and notifications published), FAILED (an ERROR update; a timeout is a
`TaskTimeoutError`), CANCELLED, or PAUSED when its pipeline returned a pause (it keeps its
inbox and is continued with `resume_task`). Each ending is recorded in the task's group and
reported to the telemetry sink. The session mixes this in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from penguiflow_planner import PlannerPause

from penguiflow.errors import describe_exception
from penguiflow.observability import enabled, observe, publish_point

from ._errors import TaskTimeoutError
from .models import (
    MergeStrategy,
    NotificationAction,
    NotificationPayload,
    SessionLimits,
    StateUpdate,
    TaskResult,
    TaskState,
    TaskStatus,
    TaskType,
    UpdateType,
)
from .steering import SteeringCancelled, SteeringInbox
from .telemetry import TaskTelemetryEvent, TaskTelemetrySink

if TYPE_CHECKING:
    from ._groups import GroupBook
    from .models import ContextPatch
    from .registry import TaskRegistry
    from .session import TaskPipeline, TaskRuntime

__all__ = ["SessionExecutionMixin"]

# The session's logger: records keep the name they had before this module was split out.
_LOGGER = logging.getLogger("penguiflow_sessions.session")


#: `_status_update` reasons for states a running task passes through (not where it ends)
_PASSING_STATES = frozenset({"queued", "running"})


def _is_pause(result: TaskResult) -> bool:
    return isinstance(result.payload, PlannerPause) or result.metadata.get("paused") is True


class SessionExecutionMixin:
    session_id: str
    _limits: SessionLimits
    _registry: TaskRegistry
    _telemetry: TaskTelemetrySink
    _inboxes: dict[str, SteeringInbox]
    _handles: dict[str, asyncio.Task[TaskResult]]
    _task_options: dict[str, tuple[MergeStrategy, str | None]]
    _cancel_reasons: dict[str, str]
    _parked: dict[str, TaskResult]
    _semaphore: asyncio.Semaphore | None
    _groups: GroupBook

    if TYPE_CHECKING:
        # Provided by StreamingSession or the context mixin; declared for the type checker.
        def _make_update(
            self,
            state: TaskState,
            kind: UpdateType,
            content: Any,
            *,
            trace_id: str | None = None,
            step_index: int | None = None,
            total_steps: int | None = None,
        ) -> StateUpdate: ...

        async def _write(self, update: StateUpdate) -> StateUpdate | None: ...

        def _new_runtime(self, state: TaskState, inbox: SteeringInbox) -> TaskRuntime: ...

        async def apply_context_patch(
            self,
            *,
            patch: ContextPatch,
            strategy: MergeStrategy = MergeStrategy.APPEND,
            payload: Any | None = None,
            group_id: str | None = None,
            if_diverged: Literal["flag", "refuse"] = "flag",
        ) -> str | None: ...

        async def mark_task_complete_in_group(
            self,
            group_id: str,
            task_id: str,
            *,
            success: bool,
            patch: ContextPatch | None = None,
            patch_id: str | None = None,
        ) -> None: ...

    # -- statuses and telemetry -------------------------------------------------------------

    async def _status_update(self, state: TaskState, reason: str) -> None:
        if reason in _PASSING_STATES and enabled():
            # A state the task passes through: a moment inside its span. The state it ends
            # in is on its `session.task` unit of work (see `_execute`).
            await publish_point(
                "session", "task", trace_id=state.trace_id, tenant=self._tenant(),
                attributes={**self._task_attributes(state), "state": reason},
            )  # fmt: skip
        content = {
            "status": state.status.value,
            "reason": reason,
            "priority": state.priority,
            "task_type": state.task_type.value,
            "progress": state.progress,
        }
        await self._write(self._make_update(state, UpdateType.STATUS_CHANGE, content))

    async def _emit_telemetry(
        self,
        state: TaskState,
        event_type: Any,
        outcome: Any,
        *,
        duration_ms: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        snapshot = state.context_snapshot
        reason = snapshot.spawn_reason or ""
        if state.task_type is TaskType.FOREGROUND:
            mode: Any = "foreground"
        else:
            mode = "job" if reason.startswith("tool:") else "subagent"
        event = TaskTelemetryEvent(
            event_type=event_type,
            outcome=outcome,
            session_id=self.session_id,
            task_id=state.task_id,
            parent_task_id=snapshot.spawned_from_task_id,
            trace_id=state.trace_id,
            task_type=state.task_type,
            status=state.status,
            mode=mode,
            spawn_reason=snapshot.spawn_reason,
            duration_ms=duration_ms,
            extra=dict(extra or {}),
        )
        try:
            await self._telemetry.emit(event)
        except Exception as exc:
            _LOGGER.error(
                "session %s: telemetry sink %s failed on %s of task %s: %s",
                self.session_id,
                type(self._telemetry).__name__,
                event.event_type,
                state.task_id,
                describe_exception(exc),
            )

    # -- starting and running ---------------------------------------------------------------

    def _start(
        self, state: TaskState, inbox: SteeringInbox, pipeline: TaskPipeline, *, quiet: bool
    ) -> asyncio.Task[TaskResult]:
        handle = asyncio.create_task(
            self._execute(state, inbox, pipeline), name=f"task:{state.task_id}"
        )
        self._handles[state.task_id] = handle
        handle.add_done_callback(lambda done: self._on_handle_done(state.task_id, done, quiet))
        return handle

    def _on_handle_done(self, task_id: str, handle: asyncio.Task[TaskResult], quiet: bool) -> None:
        if self._handles.get(task_id) is handle:
            del self._handles[task_id]
        if quiet and not handle.cancelled():
            # Recorded, logged and reported already; retrieving it avoids asyncio's
            # "exception was never retrieved" for background tasks nobody awaits.
            handle.exception()

    # -- execution ------------------------------------------------------------------------
    async def _run_pipeline(self, pipeline: TaskPipeline, runtime: TaskRuntime) -> Any:
        limit = self._limits.max_task_runtime_s
        if limit is None:
            return await pipeline(runtime)
        try:
            async with asyncio.timeout(limit) as scope:
                return await pipeline(runtime)
        except TimeoutError as exc:
            if scope.expired():
                raise TaskTimeoutError(
                    f"timeout: task {runtime.state.task_id!r} ran longer than "
                    f"SessionLimits.max_task_runtime_s={limit}s and was stopped; raise the "
                    "limit or split the work"
                ) from exc
            raise

    def _tenant(self) -> str | None:
        """The session's tenant (the server puts `tenant_id` in its tool context)."""
        get_context = getattr(self, "get_context", None)
        if get_context is None:
            return None
        tenant = get_context()[1].get("tenant_id")
        return str(tenant) if tenant not in (None, "") else None

    def _task_attributes(self, state: TaskState) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "task_id": state.task_id,
            "kind": state.task_type.value,
            "priority": state.priority,
        }

    async def _execute(
        self, state: TaskState, inbox: SteeringInbox, pipeline: TaskPipeline
    ) -> TaskResult:
        """Run the task, observed as one `session.task` unit of work (`penguiflow.
        observability`) ending in its final state; its pipeline runs inside its span."""
        if not enabled():
            return await self._execute_task(state, inbox, pipeline)
        attributes = self._task_attributes(state)
        async with observe(
            "session", "task", trace_id=state.trace_id, tenant=self._tenant(),
            attributes=attributes,
        ) as unit:  # fmt: skip
            try:
                return await self._execute_task(state, inbox, pipeline)
            finally:
                status = state.status
                unit.attributes["state"] = status.value.lower()
                if status is TaskStatus.CANCELLED:
                    unit.attributes["status"] = "cancelled"
                elif status is TaskStatus.FAILED and unit.attributes.get("status") != "error":
                    unit.fail(state.error or "the task failed", "TaskFailed")

    async def _execute_task(
        self, state: TaskState, inbox: SteeringInbox, pipeline: TaskPipeline
    ) -> TaskResult:
        acquired = False
        semaphore = self._semaphore
        start = time.monotonic()
        try:
            if semaphore is not None:
                if semaphore.locked():
                    await self._status_update(state, "queued")
                await semaphore.acquire()
                acquired = True
            if state.status.is_terminal:  # cancelled while it waited for a slot
                raise SteeringCancelled(state.error or "cancelled")
            await self._registry.update_status(state.task_id, TaskStatus.RUNNING)
            await self._status_update(state, "running")
            runtime = self._new_runtime(state, inbox)
            start = time.monotonic()
            raw = await self._run_pipeline(pipeline, runtime)
        except SteeringCancelled as exc:
            await self._cancelled(state, exc.reason or "cancelled", start)
            raise
        except asyncio.CancelledError:
            reason = self._cancel_reasons.get(state.task_id)
            await self._cancelled(state, reason or "cancelled", start)
            if reason is None:
                raise
            # Cancelled by steering or close(): the caller of run_task was not cancelled,
            # so it gets PenguiFlow's SteeringCancelled rather than a CancelledError.
            raise SteeringCancelled(reason) from None
        except Exception as exc:
            await self._failed(state, exc, start)
            raise
        finally:
            if acquired and semaphore is not None:
                semaphore.release()
        result = raw if isinstance(raw, TaskResult) else TaskResult(payload=raw)
        if _is_pause(result):
            await self._park(state, result)
        else:
            await self._completed(state, result, start)
        return result

    async def _finish(
        self,
        state: TaskState,
        status: TaskStatus,
        *,
        reason: str,
        error: str | None = None,
        result: Any = None,
    ) -> bool:
        """Move a task to a final status once; False when it had already ended."""
        if state.status.is_terminal:
            return False
        self._record_in_group(state, success=status is TaskStatus.COMPLETE)
        await self._registry.update_task(state.task_id, status=status, error=error, result=result)
        self._inboxes.pop(state.task_id, None)
        self._parked.pop(state.task_id, None)
        await self._status_update(state, reason)
        return True

    def _record_in_group(self, state: TaskState, *, success: bool) -> None:
        # Synchronous, before any await: whoever sees the task ended sees its group count it.
        _, group_id = self._task_options.get(state.task_id, (MergeStrategy.APPEND, None))
        group = self._groups.groups.get(group_id) if group_id is not None else None
        if group is not None:
            self._groups.record(group, state.task_id, success=success)

    async def _group_task_ended(
        self, state: TaskState, *, success: bool, patch_id: str | None
    ) -> None:
        _, group_id = self._task_options.get(state.task_id, (MergeStrategy.APPEND, None))
        if group_id is not None:
            await self.mark_task_complete_in_group(
                group_id, state.task_id, success=success, patch_id=patch_id
            )

    async def _cancelled(self, state: TaskState, reason: str, start: float) -> None:
        if not await self._finish(state, TaskStatus.CANCELLED, reason="cancelled", error=reason):
            return
        await self._after_cancel(state, reason, (time.monotonic() - start) * 1000)

    async def _after_cancel(self, state: TaskState, reason: str, duration_ms: float | None) -> None:
        await self._group_task_ended(state, success=False, patch_id=None)
        await self._emit_telemetry(
            state,
            "task_cancelled",
            "cancelled",
            duration_ms=duration_ms,
            extra={"reason": reason},
        )
        if state.task_type is TaskType.BACKGROUND:
            note = NotificationPayload(
                severity="warning", title="Background task cancelled", body=reason
            )
            await self._write(
                self._make_update(state, UpdateType.NOTIFICATION, note.model_dump(mode="json"))
            )

    async def _failed(self, state: TaskState, exc: Exception, start: float) -> None:
        text = describe_exception(exc)
        timeout = isinstance(exc, TaskTimeoutError)
        if not timeout:
            _LOGGER.error(
                "session %s: task %s failed with %s: %s",
                self.session_id,
                state.task_id,
                type(exc).__name__,
                text,
                exc_info=exc,
            )
        if state.status.is_terminal:
            return
        self._record_in_group(state, success=False)
        await self._registry.update_task(state.task_id, status=TaskStatus.FAILED, error=text)
        self._inboxes.pop(state.task_id, None)
        error = {"error": text, "error_type": type(exc).__name__}
        await self._write(self._make_update(state, UpdateType.ERROR, error))
        await self._status_update(state, "timeout" if timeout else "failed")
        await self._group_task_ended(state, success=False, patch_id=None)
        await self._emit_telemetry(
            state,
            "task_failed",
            "failed",
            duration_ms=(time.monotonic() - start) * 1000,
            extra=error,
        )
        if state.task_type is TaskType.BACKGROUND:
            note = NotificationPayload(severity="error", title="Background task failed", body=text)
            await self._write(
                self._make_update(state, UpdateType.NOTIFICATION, note.model_dump(mode="json"))
            )

    async def _park(self, state: TaskState, result: TaskResult) -> None:
        if state.status.is_terminal:
            return
        self._parked[state.task_id] = result
        await self._registry.update_status(state.task_id, TaskStatus.PAUSED)
        await self._status_update(state, "awaiting_input")
        pause = result.payload
        content: dict[str, Any] = {"kind": "task_paused", "task_id": state.task_id}
        if isinstance(pause, PlannerPause):
            # Never the resume token: it is a bearer secret for the paused run.
            content.update(reason=pause.reason, payload=pause.payload, ref=pause.ref)
        content["options"] = ["approve", "reject"]
        await self._write(self._make_update(state, UpdateType.CHECKPOINT, content))

    async def _completed(self, state: TaskState, result: TaskResult, start: float) -> None:
        if state.status.is_terminal:  # cancelled as it finished: the cancel stands
            return
        merge, group_id = self._task_options.get(state.task_id, (MergeStrategy.APPEND, None))
        self._record_in_group(state, success=True)
        await self._registry.update_task(
            state.task_id, status=TaskStatus.COMPLETE, result=result.payload
        )
        self._inboxes.pop(state.task_id, None)
        patch_id: str | None = None
        if result.context_patch is not None:
            patch_id = await self.apply_context_patch(
                patch=result.context_patch,
                strategy=merge,
                payload=result.payload,
                group_id=group_id,
            )
        content = {
            "digest": list(result.digest),
            "payload": result.payload,
            "artifacts": list(result.artifacts),
            "sources": list(result.sources),
            "task_patch": (
                result.context_patch.model_dump(mode="json") if result.context_patch else None
            ),
            "patch_id": patch_id,
        }
        await self._write(self._make_update(state, UpdateType.RESULT, content))
        if result.notification is not None:
            note = result.notification.model_copy(deep=True)
            if patch_id is not None:
                note.actions.append(
                    NotificationAction(
                        id="apply_context_patch",
                        label="Apply to conversation",
                        payload={"patch_id": patch_id, "task_id": state.task_id},
                    )
                )
            await self._write(
                self._make_update(state, UpdateType.NOTIFICATION, note.model_dump(mode="json"))
            )
        await self._status_update(state, "complete")
        if (
            state.task_type is TaskType.BACKGROUND
            and state.context_snapshot.notify_on_complete
            and result.notification is None
        ):
            note = NotificationPayload(
                title="Background task complete", body=f"Task {state.task_id} completed."
            )
            await self._write(
                self._make_update(state, UpdateType.NOTIFICATION, note.model_dump(mode="json"))
            )
        await self._group_task_ended(state, success=True, patch_id=patch_id)
        await self._emit_telemetry(
            state, "task_completed", "completed", duration_ms=(time.monotonic() - start) * 1000
        )
