"""`StreamingSession`: one conversation's tasks, their updates, steering and shared context.

A session runs task pipelines (`spawn_task` in the background, `run_task` awaited), records
every task change in its `TaskRegistry` and state store, and streams `StateUpdate`s to
subscribers through one writer that persists each update before publishing it. Steering
events reach a task through its `SteeringInbox`, which lives as long as the task: a task
whose pipeline returned a pause (a planner waiting for approval) is PAUSED, keeps its inbox,
and is continued with `resume_task`.

Running a task (its pipeline, statuses, timeout, result and telemetry) is in
`_session_execution.py`; task groups, context versions and patches in `_session_context.py`;
steering in `_session_steering.py` (the session mixes the three in).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from penguiflow.errors import ConfigurationError, InvalidTypeError, UsageError, describe_exception
from penguiflow.resources import AsyncResource, aclose_resource

from ._errors import TaskLimitExceededError, TaskTimeoutError
from ._session_context import SessionContextMixin
from ._session_execution import SessionExecutionMixin
from ._session_steering import SessionSteeringMixin
from ._writer import UpdateWriter
from .broker import UpdateBroker
from .models import (
    MergeStrategy,
    NotificationPayload,
    SessionLimits,
    StateUpdate,
    TaskContextSnapshot,
    TaskResult,
    TaskState,
    TaskStatus,
    TaskType,
    UpdateType,
)
from .persistence import (
    InMemorySessionStateStore,
    SessionStateStore,
    StateStoreSessionAdapter,
    is_session_state_store,
)
from .policy import ControlPolicy
from .registry import TaskRegistry
from .steering import SteeringInbox
from .telemetry import LoggingTaskTelemetrySink, TaskTelemetrySink

__all__ = [
    "StreamingSession",
    "TaskLimitExceededError",
    "TaskPipeline",
    "TaskRuntime",
    "TaskTimeoutError",
]

_LOGGER = logging.getLogger("penguiflow_sessions.session")
_PROPAGATE = ("cascade", "isolate")


class TaskRuntime:
    """What a pipeline gets: its task, its steering inbox, its context snapshot, and ways
    to report progress."""

    def __init__(
        self,
        *,
        session: StreamingSession,
        state: TaskState,
        steering: SteeringInbox,
        context_snapshot: TaskContextSnapshot,
    ) -> None:
        self.session = session
        self.state = state
        self.steering = steering
        self.context_snapshot = context_snapshot

    def emit_update(
        self,
        update_type: UpdateType,
        content: Any,
        *,
        step_index: int | None = None,
        total_steps: int | None = None,
    ) -> StateUpdate:
        """Queue an update of this task (saved, then published, in order) and return it.

        A PROGRESS update with a dict content also becomes the task's `progress`. The
        returned update carries the id it was created with; when the store assigns its own
        cursor, subscribers see that one (`await emit(...)` returns the published update)."""
        update = self._build(update_type, content, step_index, total_steps)
        self.session._submit(update)
        return update

    async def emit(
        self,
        update_type: UpdateType,
        content: Any,
        *,
        step_index: int | None = None,
        total_steps: int | None = None,
    ) -> StateUpdate | None:
        """`emit_update`, waiting until the update is saved and published; returns it as
        published (None when saving failed, which is logged)."""
        update = self._build(update_type, content, step_index, total_steps)
        return await self.session._write(update)

    def _build(
        self, update_type: UpdateType, content: Any, step: int | None, total: int | None
    ) -> StateUpdate:
        kind = UpdateType(update_type)
        if kind is UpdateType.PROGRESS and isinstance(content, dict):
            self.state.progress = dict(content)
            self.session._track(
                self.session._registry.update_task(self.state.task_id, progress=dict(content))
            )
        return self.session._make_update(
            self.state, kind, content, step_index=step, total_steps=total
        )

    def notify(self, payload: NotificationPayload) -> None:
        """Queue a NOTIFICATION update for this task."""
        self.emit_update(UpdateType.NOTIFICATION, payload.model_dump(mode="json"))


#: A task's body: given its runtime, returns a `TaskResult` (or any value, its payload).
TaskPipeline = Callable[[TaskRuntime], Awaitable[TaskResult | Any]]


class StreamingSession(
    SessionSteeringMixin, SessionExecutionMixin, SessionContextMixin, AsyncResource
):
    """The tasks, updates, steering and context of one session (see the module docstring).

    `state_store` is a `SessionStateStore`, a kernel state store with the `tasks` and
    `steering` capabilities, or a state-store URL (`"sqlite:///s.db"`; the session then
    owns the store and closes it). Close the session with `close()`/`aclose()` or
    `async with`: running tasks are cancelled and subscribers end."""

    def __init__(
        self,
        session_id: str,
        *,
        control_policy: ControlPolicy | None = None,
        limits: SessionLimits | None = None,
        state_store: SessionStateStore | Any | None = None,
        telemetry_sink: TaskTelemetrySink | None = None,
    ) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise ConfigurationError(f"session_id must be a non-empty string, got {session_id!r}")
        self.session_id = session_id
        self._limits = limits if limits is not None else SessionLimits()
        self._owned_store: Any = None
        self._state_store = self._open_store(state_store)
        self._registry = TaskRegistry(persist_task=self._persist_task)
        self._broker = UpdateBroker(max_queue_size=self._limits.update_queue_size)
        self._writer = UpdateWriter(
            persist=self._state_store.save_update,
            publish=self._broker.publish,
            session_id=session_id,
        )
        self._control_policy = control_policy or ControlPolicy()
        # PenguiFlow's default sink was a no-op, which hid background failures: log instead.
        self._telemetry: TaskTelemetrySink = telemetry_sink or LoggingTaskTelemetrySink()
        self._inboxes: dict[str, SteeringInbox] = {}
        self._handles: dict[str, asyncio.Task[TaskResult]] = {}
        self._task_options: dict[str, tuple[MergeStrategy, str | None]] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._parked: dict[str, TaskResult] = {}
        self._helpers: set[asyncio.Task[Any]] = set()
        self._semaphore = (
            asyncio.Semaphore(self._limits.max_concurrent_tasks)
            if self._limits.max_concurrent_tasks > 0
            else None
        )
        self._foreground_task_id: str | None = None
        self._hydrated = False
        self._closed = False
        self._init_context()
        self._init_steering()

    # -- construction and plumbing -------------------------------------------------------

    def _open_store(self, store: Any) -> SessionStateStore:
        if store is None:
            return InMemorySessionStateStore()
        if isinstance(store, str):
            from penguiflow.plugins import resolve_driver

            store = resolve_driver("state_store", store)
            self._owned_store = store
        if is_session_state_store(store):
            return store  # type: ignore[no-any-return]
        if callable(getattr(store, "save_task_update", None)):
            return StateStoreSessionAdapter(store)
        raise InvalidTypeError(
            f"state_store must be a SessionStateStore, a state store with the 'tasks' and "
            f"'steering' capabilities, or a state-store URL; got {type(store).__name__}"
        )

    @property
    def registry(self) -> TaskRegistry:
        return self._registry

    @property
    def limits(self) -> SessionLimits:
        return self._limits

    @property
    def state_store(self) -> SessionStateStore:
        return self._state_store

    @property
    def broker(self) -> UpdateBroker:
        return self._broker

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise UsageError(
                f"session {self.session_id!r} is closed: cannot {action}; open a new one "
                "(StreamingSession(...) or SessionManager.get_or_create)"
            )

    async def _persist_task(self, state: TaskState) -> None:
        # A store failure must not leave a task half-finished in memory: log it loudly.
        try:
            await self._state_store.save_task(state)
        except Exception as exc:
            _LOGGER.error(
                "session %s: saving task %s failed: %s",
                self.session_id,
                state.task_id,
                describe_exception(exc),
            )

    def _make_update(
        self,
        state: TaskState,
        kind: UpdateType,
        content: Any,
        *,
        trace_id: str | None = None,
        step_index: int | None = None,
        total_steps: int | None = None,
    ) -> StateUpdate:
        from ._context import json_copy

        return StateUpdate(
            session_id=self.session_id,
            task_id=state.task_id,
            trace_id=trace_id if trace_id is not None else state.trace_id,
            update_type=kind,
            content=json_copy(content, as_text=True),
            step_index=step_index,
            total_steps=total_steps,
        )

    def _submit(self, update: StateUpdate) -> None:
        self._writer.submit(update)

    async def _write(self, update: StateUpdate) -> StateUpdate | None:
        return await self._writer.write(update)

    async def _publish_for(
        self, task_id: str, kind: UpdateType, content: Any, trace_id: str | None = None
    ) -> None:
        # Updates about a task id that may not be registered (patches, groups).
        await self._write(
            StateUpdate(
                session_id=self.session_id,
                task_id=task_id,
                trace_id=trace_id,
                update_type=kind,
                content=content,
            )
        )

    def _track(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception as exc:
                _LOGGER.error("session %s: %s", self.session_id, describe_exception(exc))

        helper = asyncio.ensure_future(run())
        self._helpers.add(helper)
        helper.add_done_callback(self._helpers.discard)

    def _new_runtime(self, state: TaskState, inbox: SteeringInbox) -> TaskRuntime:
        return TaskRuntime(
            session=self, state=state, steering=inbox, context_snapshot=state.context_snapshot
        )

    # -- spawning -------------------------------------------------------------------------

    async def ensure_capacity(self, task_type: TaskType) -> None:
        """`TaskLimitExceededError` when another task of `task_type` would exceed the
        limits (tasks that have ended do not count)."""
        active = await self._registry.list_active(self.session_id)
        limit = self._limits.max_tasks_per_session
        if len(active) >= limit:
            raise TaskLimitExceededError(
                f"task_limit_exceeded: session {self.session_id!r} has {len(active)} active "
                f"tasks (SessionLimits.max_tasks_per_session={limit}); wait for one to end, "
                "cancel one, or raise the limit"
            )
        if TaskType(task_type) is TaskType.BACKGROUND:
            count = sum(1 for t in active if t.task_type is TaskType.BACKGROUND)
            limit = self._limits.max_background_tasks
            if count >= limit:
                raise TaskLimitExceededError(
                    f"background_task_limit_exceeded: session {self.session_id!r} has {count} "
                    f"active background tasks (SessionLimits.max_background_tasks={limit}); "
                    "wait for one to end, cancel one, or raise the limit"
                )

    async def _create(
        self,
        *,
        task_type: TaskType,
        priority: int,
        context_snapshot: TaskContextSnapshot | None,
        description: str | None,
        spawn_reason: str | None,
        parent_task_id: str | None,
        spawned_from_event_id: str | None,
        query: str | None,
        task_id: str | None,
        trace_id: str | None,
        merge_strategy: MergeStrategy,
        propagate_on_cancel: Literal["cascade", "isolate"],
        notify_on_complete: bool,
        group_id: str | None,
    ) -> tuple[TaskState, SteeringInbox]:
        # Every check comes before the first change, so a refused spawn leaves no trace.
        self._check_open("spawn a task")
        task_type = TaskType(task_type)
        merge_strategy = MergeStrategy(merge_strategy)
        if propagate_on_cancel not in _PROPAGATE:
            raise ConfigurationError(
                f"propagate_on_cancel must be one of {list(_PROPAGATE)}, got "
                f"{propagate_on_cancel!r}"
            )
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigurationError(f"priority must be an integer, got {priority!r}")
        if task_id is not None and await self._registry.get_task(task_id) is not None:
            raise UsageError(
                f"task id {task_id!r} already exists in session {self.session_id!r}; pass a "
                "new task_id or none (one is generated)"
            )
        if parent_task_id is not None:
            self._registry.require(parent_task_id)
        if group_id is not None:
            self._groups.require_open(group_id)
        await self.ensure_capacity(task_type)
        task_id = task_id or secrets.token_hex(8)
        snapshot = self._snapshot_for(
            task_id=task_id,
            given=context_snapshot,
            trace_id=trace_id,
            spawn_reason=spawn_reason,
            task_type=task_type,
            query=query,
            parent_task_id=parent_task_id,
            spawned_from_event_id=spawned_from_event_id,
            propagate_on_cancel=propagate_on_cancel,
            notify_on_complete=notify_on_complete,
        )
        state = await self._registry.create_task(
            session_id=self.session_id,
            task_type=task_type,
            priority=priority,
            context_snapshot=snapshot,
            description=description,
            trace_id=trace_id,
            task_id=task_id,
        )
        if group_id is not None:
            group = self._groups.require(group_id)
            if task_id not in group.task_ids:
                group.task_ids.append(task_id)
                self._context_changed()  # groups are saved with the context
        self._task_options[task_id] = (merge_strategy, group_id)
        inbox = SteeringInbox(maxsize=self._limits.steering_queue_size)
        self._inboxes[task_id] = inbox
        if task_type is TaskType.FOREGROUND:
            self._foreground_task_id = task_id
        await self._status_update(state, "created")
        await self._emit_telemetry(state, "task_spawned", "spawned")
        return state, inbox

    async def spawn_task(
        self,
        pipeline: TaskPipeline,
        *,
        task_type: TaskType = TaskType.FOREGROUND,
        priority: int = 0,
        context_snapshot: TaskContextSnapshot | None = None,
        description: str | None = None,
        spawn_reason: str | None = None,
        parent_task_id: str | None = None,
        spawned_from_event_id: str | None = None,
        query: str | None = None,
        task_id: str | None = None,
        trace_id: str | None = None,
        merge_strategy: MergeStrategy = MergeStrategy.APPEND,
        propagate_on_cancel: Literal["cascade", "isolate"] = "cascade",
        notify_on_complete: bool = True,
        group_id: str | None = None,
    ) -> str:
        """Register a task and start `pipeline` in the background; returns the task id.

        Refused (nothing changes) with `UsageError` for a closed session, a taken
        `task_id` or a group that is not open, `UnknownNameError` for an unknown
        `parent_task_id`/`group_id`, `TaskLimitExceededError` past the limits."""
        state, inbox = await self._create(
            task_type=task_type,
            priority=priority,
            context_snapshot=context_snapshot,
            description=description,
            spawn_reason=spawn_reason,
            parent_task_id=parent_task_id,
            spawned_from_event_id=spawned_from_event_id,
            query=query,
            task_id=task_id,
            trace_id=trace_id,
            merge_strategy=merge_strategy,
            propagate_on_cancel=propagate_on_cancel,
            notify_on_complete=notify_on_complete,
            group_id=group_id,
        )
        self._start(state, inbox, pipeline, quiet=True)
        return state.task_id

    async def run_task(
        self,
        pipeline: TaskPipeline,
        *,
        task_type: TaskType = TaskType.FOREGROUND,
        priority: int = 0,
        context_snapshot: TaskContextSnapshot | None = None,
        description: str | None = None,
        spawn_reason: str | None = None,
        parent_task_id: str | None = None,
        spawned_from_event_id: str | None = None,
        query: str | None = None,
        task_id: str | None = None,
        trace_id: str | None = None,
        merge_strategy: MergeStrategy = MergeStrategy.APPEND,
        propagate_on_cancel: Literal["cascade", "isolate"] = "cascade",
        notify_on_complete: bool = True,
        group_id: str | None = None,
    ) -> TaskResult:
        """`spawn_task`, then wait for the task's result.

        Raises what the pipeline raised (the task is FAILED), `TaskTimeoutError` past
        `max_task_runtime_s`, `SteeringCancelled` when it was cancelled. A pipeline that
        returns a pause leaves the task PAUSED with its inbox; its result is returned."""
        state, inbox = await self._create(
            task_type=task_type,
            priority=priority,
            context_snapshot=context_snapshot,
            description=description,
            spawn_reason=spawn_reason,
            parent_task_id=parent_task_id,
            spawned_from_event_id=spawned_from_event_id,
            query=query,
            task_id=task_id,
            trace_id=trace_id,
            merge_strategy=merge_strategy,
            propagate_on_cancel=propagate_on_cancel,
            notify_on_complete=notify_on_complete,
            group_id=group_id,
        )
        # The pipeline runs in a task of its own so that a CANCEL can stop it without
        # cancelling the caller; cancelling the caller cancels it.
        return await self._start(state, inbox, pipeline, quiet=False)

    async def resume_task(
        self, task_id: str, pipeline: TaskPipeline, *, wait: bool = True
    ) -> TaskResult | None:
        """Continue a PAUSED task whose pipeline returned a pause, with `pipeline` (which
        reads the same inbox, so APPROVE/REJECT sent meanwhile reach it).

        `UnknownNameError` for an unknown id, `UsageError` when the task is not parked."""
        self._check_open("resume a task")
        state = self._registry.require(task_id)
        if task_id not in self._parked:
            raise UsageError(
                f"task {task_id!r} is {state.status.value}, not paused awaiting input; only "
                "a task whose pipeline returned a pause can be resumed"
            )
        self._parked.pop(task_id)
        handle = self._start(state, self._inboxes[task_id], pipeline, quiet=wait is False)
        if not wait:
            return None
        return await handle

    # -- reading ----------------------------------------------------------------------------

    async def get_task(self, task_id: str) -> TaskState | None:
        """The task, or None when this session has no task `task_id` (PenguiFlow's rule)."""
        return await self._registry.get_task(task_id)

    async def list_tasks(self, *, status: TaskStatus | None = None) -> list[TaskState]:
        """The session's tasks in creation order, optionally only those with `status`."""
        return await self._registry.list_tasks(
            self.session_id, status=TaskStatus(status) if status is not None else None
        )

    async def list_updates(
        self,
        *,
        task_id: str | None = None,
        since_id: str | None = None,
        limit: int | None = 500,
    ) -> list[StateUpdate]:
        """Saved updates after `since_id` (exclusive), oldest first; the last `limit`."""
        await self._writer.flush()
        return list(
            await self._state_store.list_updates(
                self.session_id, task_id=task_id, since_id=since_id, limit=limit
            )
        )

    async def subscribe(
        self,
        *,
        task_ids: list[str] | None = None,
        update_types: list[UpdateType] | None = None,
        since_id: str | None = None,
    ) -> AsyncIterator[StateUpdate]:
        """Updates matching the filters: first the saved ones after `since_id` (exclusive),
        then live ones, each once and in cursor order. Ends when the session closes.

        The live subscription starts before the saved updates are read, so an update saved
        in between is in one of the two and never lost; it is yielded once."""
        self._check_open("subscribe")
        subscription = self._broker.subscribe_nowait(task_ids=task_ids, update_types=update_types)
        try:
            replay: list[StateUpdate] = []
            if since_id is not None:
                only = task_ids[0] if task_ids and len(task_ids) == 1 else None
                replay = [
                    u
                    for u in await self._state_store.list_updates(
                        self.session_id, task_id=only, since_id=since_id, limit=None
                    )
                    if subscription.matches(u)
                ]
        except BaseException:
            await subscription.aclose()
            raise

        async def updates() -> AsyncIterator[StateUpdate]:
            seen = {u.update_id for u in replay}
            try:
                for update in replay:
                    yield update
                async for update in subscription:
                    if seen:
                        if update.update_id in seen:
                            continue
                        # Live updates come in cursor order: this one is past the replay.
                        seen.clear()
                    yield update
            finally:
                await subscription.aclose()

        return updates()

    # -- life cycle ---------------------------------------------------------------------------

    async def connect(self, transport: Any) -> Any:
        """A `SessionConnection` wiring this session to `transport` (enter it to start)."""
        from .transport import SessionConnection

        return SessionConnection(self, transport)

    async def hydrate(self) -> None:
        """Load the tasks, steering history and context saved for this session (once).

        Tasks come back with the status they were saved with; a task that was running when
        the process stopped has no pipeline here, so it stays as saved until cancelled.
        Steering event ids are remembered, so a duplicate sent before the restart is still
        refused. The context comes back with its version, hash, merged background results
        and pending patches; live objects of `tool_context` were never saved, so set them
        again. A context this session already changed is kept (it is the newer one)."""
        if self._hydrated:
            return
        self._check_open("hydrate")
        tasks = list(await self._state_store.list_tasks(self.session_id))
        known = [t for t in tasks if await self._registry.get_task(t.task_id) is None]
        await self._registry.seed_tasks(known)
        foreground = [t for t in tasks if t.task_type is TaskType.FOREGROUND]
        if foreground:
            self._foreground_task_id = foreground[-1].task_id
        for event in await self._state_store.list_steering(self.session_id, limit=None):
            self._remember_event(event.task_id, event.event_id)
        await self._restore_context()
        self._hydrated = True

    async def close(self) -> None:
        """Cancel running tasks (CANCELLED, "session_closed"), save and publish what is
        pending, end every subscription and close an owned store. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task_id, handle in list(self._handles.items()):
            self._cancel_reasons.setdefault(task_id, "session_closed")
            handle.cancel()
        if self._handles:
            await asyncio.gather(*self._handles.values(), return_exceptions=True)
        for state in await self._registry.list_active(self.session_id):
            # Parked, or never started here: no handle was there to end it.
            if state.task_id in self._inboxes and await self._finish(
                state, TaskStatus.CANCELLED, reason="cancelled", error="session_closed"
            ):
                await self._after_cancel(state, "session_closed", None)
        for waiter in list(self._continuations.values()):
            waiter.cancel()
        if self._helpers:
            await asyncio.gather(*self._helpers, return_exceptions=True)
        await self._writer.aclose()
        await self._flush_context_saves(final=True)
        await self._broker.aclose()
        if self._owned_store is not None:
            await aclose_resource(self._owned_store)

    async def aclose(self) -> None:
        """`close()`."""
        await self.close()
