"""Steering for `StreamingSession`: the order an event is handled in, and cancelling.

Order (each step refuses with an error and no change, or hands on):
session match -> sanitise -> validate -> target (a pending patch or parked control for
APPROVE/REJECT, else a known task) -> dedupe by event id -> persist -> approve/reject ->
control policy (a destructive event from a non-user source is parked until approved) ->
PRIORITIZE / PAUSE / RESUME / CANCEL (with the cascade) -> push into the task's inbox.

Every event that gets past the checks is put in the audit trail (`penguiflow.audit`) with
how it ended: `steering.<type>` (outcome `applied`, `parked` awaiting approval, or `ignored`)
and `approval.approve` / `approval.reject` for decisions; its payload only with content
capture on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from penguiflow import audit
from penguiflow.errors import UsageError

from ._errors import DuplicateSteeringEventError
from .models import (
    SessionLimits,
    TaskContextSnapshot,
    TaskGroup,
    TaskState,
    TaskStatus,
    TaskType,
    UpdateType,
)
from .steering import (
    SteeringEvent,
    SteeringEventType,
    SteeringInbox,
    sanitize_steering_event,
    validate_steering_event,
)

if TYPE_CHECKING:
    from .persistence import SessionStateStore
    from .policy import ControlPolicy
    from .registry import TaskRegistry

__all__ = ["SessionSteeringMixin"]

_DECISIONS = (SteeringEventType.APPROVE, SteeringEventType.REJECT)


class SessionSteeringMixin:
    session_id: str
    _limits: SessionLimits
    _registry: TaskRegistry
    _state_store: SessionStateStore
    _control_policy: ControlPolicy
    _inboxes: dict[str, SteeringInbox]
    _handles: dict[str, asyncio.Task[Any]]
    _cancel_reasons: dict[str, str]
    _pending_patches: dict[str, Any]

    if TYPE_CHECKING:
        # Provided by StreamingSession or the other mixin; declared for the type checker.
        def _check_open(self, action: str) -> None: ...

        def get_context(self) -> tuple[dict[str, Any], dict[str, Any]]: ...

        async def _publish_for(
            self, task_id: str, kind: UpdateType, content: Any, trace_id: str | None = None
        ) -> None: ...

        async def _status_update(self, state: TaskState, reason: str) -> None: ...

        async def _finish(
            self,
            state: TaskState,
            status: TaskStatus,
            *,
            reason: str,
            error: str | None = None,
            result: Any = None,
        ) -> bool: ...

        async def _after_cancel(
            self, state: TaskState, reason: str, duration_ms: float | None
        ) -> None: ...

        async def _emit_telemetry(
            self,
            state: TaskState,
            event_type: Any,
            outcome: Any,
            *,
            duration_ms: float | None = None,
            extra: dict[str, Any] | None = None,
        ) -> None: ...

        async def apply_pending_patch(self, *, patch_id: str, strategy: Any = None) -> bool: ...

        async def _reject_pending_patch(self, patch_id: str, event: SteeringEvent) -> bool: ...

    def _init_steering(self) -> None:
        self._seen_ids: dict[str, deque[str]] = {}
        self._pending_controls: dict[str, SteeringEvent] = {}

    @property
    def pending_controls(self) -> dict[str, SteeringEvent]:
        """Destructive events parked until a user approves them, by resume token."""
        return dict(self._pending_controls)

    def _seen(self, task_id: str, event_id: str) -> bool:
        return event_id in self._seen_ids.get(task_id, ())

    def _remember_event(self, task_id: str, event_id: str) -> None:
        seen = self._seen_ids.get(task_id)
        if seen is None:
            seen = deque(maxlen=self._limits.max_steering_events_per_task)
            self._seen_ids[task_id] = seen
        if event_id not in seen:
            seen.append(event_id)

    def _decision_target(self, event: SteeringEvent) -> tuple[str, str] | None:
        if event.event_type not in _DECISIONS:
            return None
        patch_id = event.payload.get("patch_id")
        if isinstance(patch_id, str) and patch_id in self._pending_patches:
            return ("patch", patch_id)
        token = event.payload.get("resume_token") or event.payload.get("event_id")
        if isinstance(token, str) and token in self._pending_controls:
            return ("control", token)
        return None

    async def steer(self, event: SteeringEvent) -> bool:
        """Handle a steering event (see the module docstring for the order).

        Returns True when it took effect or was queued for the task; False when it waits for
        approval, was a rejection, targets a task that has ended, or the inbox refused it.
        Raises `UsageError` (closed session, another session's event),
        `SteeringValidationError`, `UnknownNameError` (unknown task) and
        `DuplicateSteeringEventError`, each before any change."""
        self._check_open("steer")
        if event.session_id != self.session_id:
            raise UsageError(
                f"steering event {event.event_id} is for session {event.session_id!r}, not "
                f"{self.session_id!r}; send it to its own session"
            )
        event = sanitize_steering_event(
            event, max_payload_bytes=self._limits.max_steering_payload_bytes
        )
        validate_steering_event(event)
        decision = self._decision_target(event)
        state: TaskState | None = None
        if decision is None:
            state = self._registry.require(event.task_id)
        if self._seen(event.task_id, event.event_id):
            raise DuplicateSteeringEventError(
                f"steering event id {event.event_id!r} was already received for task "
                f"{event.task_id!r}; each event needs a new event_id (it is used to drop "
                "resends)"
            )
        if state is not None and state.status.is_terminal:
            return False
        self._remember_event(event.task_id, event.event_id)
        await self._state_store.save_steering(event)
        if decision is not None:
            decided = await self._decide(event, *decision)
            if event.event_type is SteeringEventType.APPROVE:
                outcome = "applied" if decided else "ignored"  # ignored: the task had ended
            else:
                outcome = "rejected"
            await self._audit(
                event, f"approval.{event.event_type.value.lower()}", outcome, decides=decision[0]
            )
            return decided
        assert state is not None
        if self._control_policy.requires_confirmation(event):
            await self._audit(event, None, "parked")
            self._pending_controls[event.event_id] = event
            await self._publish_for(
                event.task_id,
                UpdateType.CHECKPOINT,
                {
                    "kind": "approval_required",
                    "resume_token": event.event_id,
                    "event_type": event.event_type.value,
                    "prompt": f"Confirm {event.event_type.value.lower()}?",
                    "options": ["approve", "reject"],
                },
                event.trace_id,
            )
            return False
        applied = await self._apply(event, state)
        await self._audit(event, None, "applied" if applied else "ignored")
        return applied

    async def _audit(
        self, event: SteeringEvent, action: str | None, outcome: str, **details: Any
    ) -> None:
        """Put `event` in the audit trail, as the session's tenant and user."""
        _, tool_context = self.get_context()
        store = self._state_store
        await audit.record(
            action or f"steering.{event.event_type.value.lower()}",
            source="session",
            tenant=tool_context.get("tenant_id"),
            user=tool_context.get("user_id"),
            session_id=self.session_id,
            target=event.task_id,
            outcome=outcome,
            details={
                "event_id": event.event_id,
                "event_type": event.event_type.value,
                "sender": event.source,
                **details,
            },
            content={"payload": event.payload},
            trace_id=event.trace_id,
            # A kernel store behind the session adapter keeps the trail when it can.
            store=getattr(store, "store", store),
        )

    async def _decide(self, event: SteeringEvent, kind: str, key: str) -> bool:
        approve = event.event_type is SteeringEventType.APPROVE
        if kind == "patch":
            if approve:
                return await self.apply_pending_patch(patch_id=key)
            return await self._reject_pending_patch(key, event)
        parked = self._pending_controls.pop(key)
        if not approve:
            await self._publish_for(
                parked.task_id,
                UpdateType.NOTIFICATION,
                {
                    "severity": "warning",
                    "title": "Action rejected",
                    "body": f"Rejected {parked.event_type.value.lower()} request.",
                    "actions": [],
                },
                parked.trace_id,
            )
            return False
        # Applied directly: the parked event was already deduplicated and saved when it came.
        payload = dict(parked.payload, confirmed=True)
        confirmed = parked.model_copy(update={"payload": payload, "source": "user"})
        state = await self._registry.get_task(parked.task_id)
        if state is None or state.status.is_terminal:
            return False
        return await self._apply(confirmed, state)

    async def _apply(self, event: SteeringEvent, state: TaskState) -> bool:
        kind = event.event_type
        if kind is SteeringEventType.PRIORITIZE:
            priority = event.payload.get("priority")
            if isinstance(priority, int) and not isinstance(priority, bool):
                await self._registry.update_priority(state.task_id, priority)
                await self._status_update(state, "priority_changed")
            return True
        if kind is SteeringEventType.CANCEL:
            reason = event.payload.get("reason")
            await self._cancel(state, reason if isinstance(reason, str) and reason else None, event)
            return True
        handled = False
        if kind is SteeringEventType.PAUSE and state.status in (
            TaskStatus.PENDING,
            TaskStatus.RUNNING,
        ):
            await self._registry.update_status(state.task_id, TaskStatus.PAUSED)
            await self._status_update(state, "paused")
            handled = True
        elif (
            kind is SteeringEventType.RESUME
            and state.status is TaskStatus.PAUSED
            and state.task_id in self._handles
        ):
            await self._registry.update_status(state.task_id, TaskStatus.RUNNING)
            await self._status_update(state, "resumed")
            handled = True
        inbox = self._inboxes.get(state.task_id)
        if inbox is None:
            return handled
        accepted = inbox.push_nowait(event)
        if accepted:
            await self._publish_for(
                state.task_id,
                UpdateType.STATUS_CHANGE,
                {
                    "status": "STEERING_RECEIVED",
                    "event_type": kind.value,
                    "event_id": event.event_id,
                },
                event.trace_id,
            )
        return accepted or handled

    async def _cancel(
        self, state: TaskState, reason: str | None, event: SteeringEvent | None
    ) -> None:
        text = reason or "cancelled"
        self._cancel_reasons.setdefault(state.task_id, text)
        inbox = self._inboxes.get(state.task_id)
        if inbox is not None and event is not None:
            inbox.push_nowait(event)  # sets its cancel event: a planner sees it cooperatively
        handle = self._handles.get(state.task_id)
        if await self._finish(state, TaskStatus.CANCELLED, reason="cancel_requested", error=text):
            await self._after_cancel(state, text, None)
        if handle is not None and not handle.done():
            handle.cancel()
        await self._cascade(state.task_id, reason or "parent_cancelled")

    async def _cascade(self, parent_id: str, reason: str) -> None:
        """Cancel the children of `parent_id` marked `cascade` (and theirs); an `isolate`
        child keeps running, and so does its subtree."""
        for child_id in await self._registry.list_children(parent_id):
            child = await self._registry.get_task(child_id)
            if child is None or child.context_snapshot.propagate_on_cancel == "isolate":
                continue
            if child.status.is_terminal:
                await self._cascade(child_id, reason)
                continue
            propagated = SteeringEvent(
                session_id=self.session_id,
                task_id=child_id,
                event_type=SteeringEventType.CANCEL,
                payload={"reason": reason, "confirmed": True, "propagated_from": parent_id},
                source="system",
            )
            self._remember_event(child_id, propagated.event_id)
            await self._state_store.save_steering(propagated)
            await self._cancel(child, reason, propagated)
            await self._audit(propagated, None, "applied", propagated_from=parent_id)

    async def cancel_task(self, task_id: str, *, reason: str | None = None) -> bool:
        """Cancel a task (and its `cascade` children) as the user; False when it had
        already ended. `UnknownNameError` for an unknown id."""
        payload = {"reason": reason} if reason else {}
        return await self.steer(
            SteeringEvent(
                session_id=self.session_id,
                task_id=task_id,
                event_type=SteeringEventType.CANCEL,
                payload=payload,
                source="user",
            )
        )

    async def broadcast_steer(
        self,
        *,
        event_type: SteeringEventType,
        payload: dict[str, Any] | None = None,
        source: str = "user",
    ) -> int:
        """Send one event of `event_type` to every active task; returns how many took it."""
        count = 0
        for state in await self._registry.list_active(self.session_id):
            event = SteeringEvent(
                session_id=self.session_id,
                task_id=state.task_id,
                event_type=event_type,
                payload=dict(payload or {}),
                source=source,
            )
            if await self.steer(event):
                count += 1
        return count

    async def _emit_group_telemetry(self, group: TaskGroup) -> None:
        ok = group.status == "complete"
        holder = TaskState(
            task_id=group.group_id,
            session_id=self.session_id,
            status=TaskStatus.COMPLETE if ok else TaskStatus.FAILED,
            task_type=TaskType.BACKGROUND,
            context_snapshot=TaskContextSnapshot(
                session_id=self.session_id, task_id=group.group_id
            ),
        )
        await self._emit_telemetry(
            holder,
            "task_group_completed" if ok else "task_group_failed",
            "completed" if ok else "failed",
            extra={
                "group_id": group.group_id,
                "group_name": group.name,
                "task_count": len(group.task_ids),
                "completed_count": len(group.completed_task_ids),
                "failed_count": len(group.failed_task_ids),
            },
        )
