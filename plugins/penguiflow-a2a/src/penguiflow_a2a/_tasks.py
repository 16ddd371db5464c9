"""The task manager: the lifecycle of A2A tasks, independent of HTTP.

A message without a task id starts a task: the manager records it (``submitted``), runs the
executor in a background asyncio task, and applies what the executor reports through its
`TaskUpdater` (``working``, artifacts, ``completed``/``failed``/``input-required``...). Every
change is saved to the `TaskStore`, published to the task's stream subscribers and, when push
configs exist, handed to the push sender. A message naming a task in ``input-required`` (or
``auth-required``) resumes it: the executor runs again with ``resuming=True``.

The bindings (`penguiflow_a2a._app`) only translate HTTP to these calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from penguiflow.errors import describe_exception
from penguiflow.observability import observe

from ._auth import Principal
from ._errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from ._store import TaskRecord, TaskStore
from ._wire import (
    TERMINAL_STATES,
    Artifact,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
    new_id,
    now_timestamp,
    to_wire,
)

__all__ = [
    "ExecutionContext",
    "Executor",
    "PushSink",
    "TaskManager",
    "TaskUpdater",
]

# States where the executor has stopped and waits for the client (or has finished for good):
# a unary send returns, and a stream ends, when the task reaches one of them.
_SETTLED = TERMINAL_STATES | {TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED}
_DEFAULT_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 100


@dataclass(slots=True)
class ExecutionContext:
    """What an executor is asked to do: the task, the caller's tenant and the new message.

    ``metadata`` is the request's metadata; ``state`` is the executor's private state for
    this task, saved with the task (never sent to clients) whenever the task changes, so a
    value set before reporting ``input-required`` is there when the task resumes."""

    task_id: str
    context_id: str
    tenant: str
    message: Message
    resuming: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def skill(self) -> str | None:
        """The skill the caller asked for: ``message.metadata["skill"]`` (A2A has no field for
        it; our client and the SDK's callers that follow this convention put it there), else
        the request metadata's ``skill``."""
        for source in (self.message.metadata or {}, self.metadata):
            value = source.get("skill")
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def text(self) -> str:
        """The message's text parts joined by newlines."""
        return "\n".join(p.text for p in self.message.parts if p.text is not None)

    @property
    def input(self) -> Any:
        """The message as a flow input: the single data part's value when the message has one
        data part and no text, else the text."""
        data = [p.data for p in self.message.parts if p.data is not None]
        if len(data) == 1 and not self.text:
            return data[0]
        return self.text


@runtime_checkable
class Executor(Protocol):
    """Runs one task. `execute` reports through `updater` and returns when the task completes,
    fails or needs input; `cancel` stops the work for a task (cancelling its trace). The
    manager also cancels the asyncio task running `execute`."""

    async def execute(self, context: ExecutionContext, updater: TaskUpdater) -> None: ...

    async def cancel(self, context: ExecutionContext) -> None: ...


class PushSink(Protocol):
    """What the manager needs of a push sender (`penguiflow_a2a._push.PushSender`)."""

    def submit(self, update: Mapping[str, Any], config: Any) -> bool: ...

    async def validate(self, url: str) -> str: ...


def _text_message(text: str, task: Task) -> Message:
    return Message(
        role=Role.AGENT,
        parts=[Part(text=text)],
        task_id=task.id,
        context_id=task.context_id,
    )


class TaskUpdater:
    """The executor's handle on its task: each call changes the task and tells the clients."""

    def __init__(self, manager: TaskManager, record: TaskRecord) -> None:
        self._manager = manager
        self._record = record

    @property
    def task(self) -> Task:
        return self._record.task

    async def status(self, state: TaskState, text: str | None = None, *, data: Any = None) -> None:
        """Move the task to ``state``; ``text`` (and ``data``, a JSON value sent as a data
        part) become the status message."""
        parts = [Part(text=text)] if text is not None else []
        if data is not None:
            parts.append(Part(data=data))
        message = None
        if parts:
            task = self.task
            message = Message(
                role=Role.AGENT, parts=parts, task_id=task.id, context_id=task.context_id
            )
        await self._manager._set_status(self._record, state, message)

    async def working(self, text: str | None = None) -> None:
        await self.status(TaskState.WORKING, text)

    async def complete(self, text: str | None = None) -> None:
        await self.status(TaskState.COMPLETED, text)

    async def fail(self, text: str) -> None:
        await self.status(TaskState.FAILED, text)

    async def reject(self, text: str) -> None:
        await self.status(TaskState.REJECTED, text)

    async def require_input(self, text: str, *, data: Any = None) -> None:
        """Wait for the client: its next message with this task's id resumes the task."""
        await self.status(TaskState.INPUT_REQUIRED, text, data=data)

    async def artifact(
        self,
        parts: list[Part],
        *,
        artifact_id: str | None = None,
        name: str | None = None,
        append: bool = False,
        last_chunk: bool = True,
    ) -> str:
        """Add (or, with ``append``, extend) an artifact; returns its id."""
        artifact = Artifact(artifact_id=artifact_id or new_id(), name=name, parts=parts)
        await self._manager._add_artifact(self._record, artifact, append, last_chunk)
        return artifact.artifact_id


class _Live:
    """The in-process side of a task: its running work and its stream subscribers."""

    __slots__ = ("context", "runner", "settled", "subscribers")

    def __init__(self, context: ExecutionContext) -> None:
        self.context = context
        self.runner: asyncio.Task[None] | None = None
        self.settled = asyncio.Event()
        self.subscribers: set[asyncio.Queue[StreamResponse | None]] = set()


def _trim(task: Task, history_length: int | None, include_artifacts: bool = True) -> Task:
    update: dict[str, Any] = {}
    if history_length is not None:
        update["history"] = task.history[-history_length:] if history_length > 0 else []
    if not include_artifacts:
        update["artifacts"] = []
    return task.model_copy(update=update) if update else task


class TaskManager:
    """Creates, runs, stores and streams tasks for one executor."""

    def __init__(
        self,
        executor: Executor,
        store: TaskStore,
        *,
        push_sender: PushSink | None = None,
    ) -> None:
        self._executor = executor
        self._store = store
        self._push = push_sender
        self._live: dict[str, _Live] = {}

    # -- reading ------------------------------------------------------------------------------

    async def _record(self, principal: Principal, task_id: str) -> TaskRecord:
        record = await self._store.get(principal.tenant, task_id)
        if record is None:
            # Another tenant's task is "not found" too: its existence is not ours to reveal.
            raise TaskNotFoundError(f"no task {task_id!r} for this caller; check the task id")
        return record

    async def get(
        self, principal: Principal, task_id: str, history_length: int | None = None
    ) -> Task:
        if history_length is not None and history_length < 0:
            raise InvalidParamsError("historyLength must be 0 or more")
        return _trim((await self._record(principal, task_id)).task, history_length)

    async def list_tasks(
        self, principal: Principal, request: ListTasksRequest
    ) -> ListTasksResponse:
        page_size = request.page_size or _DEFAULT_PAGE_SIZE
        if not 1 <= page_size <= _MAX_PAGE_SIZE:
            raise InvalidParamsError(f"pageSize must be between 1 and {_MAX_PAGE_SIZE}")
        try:
            offset = int(request.page_token) if request.page_token else 0
        except ValueError:
            raise InvalidParamsError("pageToken is not one this server gave out") from None
        if request.history_length is not None and request.history_length < 0:
            raise InvalidParamsError("historyLength must be 0 or more")
        tasks = [r.task for r in await self._store.list(principal.tenant)]
        if request.context_id:
            tasks = [t for t in tasks if t.context_id == request.context_id]
        if request.status not in (None, TaskState.UNSPECIFIED):
            tasks = [t for t in tasks if t.status.state == request.status]
        page = tasks[offset : offset + page_size]
        following = offset + page_size
        return ListTasksResponse(
            tasks=[_trim(t, request.history_length, bool(request.include_artifacts)) for t in page],
            next_page_token=str(following) if following < len(tasks) else "",
            page_size=page_size,
            total_size=len(tasks),
        )

    # -- sending ------------------------------------------------------------------------------

    async def send(self, principal: Principal, request: SendMessageRequest) -> Task:
        """Start or resume a task and wait until it settles (unless ``returnImmediately``)."""
        record, live = await self._start(principal, request)
        config = request.configuration
        if not (config and config.return_immediately):
            await live.settled.wait()
        history = config.history_length if config else None
        return _trim(record.task, history)

    async def stream(
        self, principal: Principal, request: SendMessageRequest
    ) -> AsyncIterator[StreamResponse]:
        """Start or resume a task; the returned iterator yields the task, then every update
        until the task settles. Errors in the request are raised before it is returned."""
        queue: asyncio.Queue[StreamResponse | None] = asyncio.Queue()
        record, live = await self._start(principal, request, queue=queue)
        # The runner has not run yet (no await since it was created): this is the start state.
        return self._follow(record.task.model_copy(deep=True), live, queue)

    async def subscribe(self, principal: Principal, task_id: str) -> AsyncIterator[StreamResponse]:
        record = await self._record(principal, task_id)
        if record.task.status.state in TERMINAL_STATES:
            raise UnsupportedOperationError(
                f"task {task_id!r} has finished ({record.task.status.state.value}); "
                "read it with GetTask instead of subscribing"
            )
        live = self._live.get(task_id)
        if live is None:
            raise UnsupportedOperationError(
                f"task {task_id!r} is not running in this server process (it was started "
                "before a restart); read it with GetTask"
            )
        queue: asyncio.Queue[StreamResponse | None] = asyncio.Queue()
        if live.settled.is_set():
            queue.put_nowait(None)  # waiting for input: nothing will happen until a message
        else:
            live.subscribers.add(queue)
        return self._follow(record.task.model_copy(deep=True), live, queue)

    async def _follow(
        self,
        snapshot: Task,
        live: _Live,
        queue: asyncio.Queue[StreamResponse | None],
    ) -> AsyncIterator[StreamResponse]:
        try:
            yield StreamResponse(task=snapshot)
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield event
        finally:
            live.subscribers.discard(queue)

    async def _start(
        self,
        principal: Principal,
        request: SendMessageRequest,
        *,
        queue: asyncio.Queue[StreamResponse | None] | None = None,
    ) -> tuple[TaskRecord, _Live]:
        message = request.message
        if not message.parts:
            raise InvalidParamsError("the message has no parts; send at least one text part")
        push_config = (
            request.configuration.task_push_notification_config if (request.configuration) else None
        )
        if push_config is not None:
            await self._check_push(push_config)
        if message.task_id:
            record = await self._record(principal, message.task_id)
            state = record.task.status.state
            if state in TERMINAL_STATES:
                raise UnsupportedOperationError(
                    f"task {record.task.id!r} has finished ({state.value}); start a new task "
                    "(send without taskId) to continue the conversation"
                )
            if state not in (TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED):
                raise InvalidParamsError(
                    f"task {record.task.id!r} is {state.value}, not waiting for input; wait "
                    "for it to settle, or cancel it"
                )
            if message.context_id and message.context_id != record.task.context_id:
                raise InvalidParamsError("the message's contextId differs from the task's")
            resuming = True
        else:
            context_id = message.context_id or new_id()
            task = Task(
                id=new_id(),
                context_id=context_id,
                status=TaskStatus(state=TaskState.SUBMITTED, timestamp=now_timestamp()),
            )
            record = TaskRecord(task, principal.tenant)
            resuming = False
        message = message.model_copy(
            update={"task_id": record.task.id, "context_id": record.task.context_id}
        )
        record.task.history.append(message)
        if push_config is not None:
            self._store_push(record, push_config)
        context = ExecutionContext(
            task_id=record.task.id,
            context_id=record.task.context_id,
            tenant=principal.tenant,
            message=message,
            resuming=resuming,
            metadata=dict(request.metadata or {}),
            state=record.executor_state,
        )
        live = _Live(context)
        previous = self._live.get(record.task.id)
        if previous is not None:
            live.subscribers |= previous.subscribers
        self._live[record.task.id] = live
        if queue is not None:
            live.subscribers.add(queue)
        await self._store.save(record)
        live.runner = asyncio.create_task(self._run(record, live))
        return record, live

    async def _run(self, record: TaskRecord, live: _Live) -> None:
        context = live.context
        attributes = {
            "side": "server",
            "skill": context.skill or "",
            "resuming": context.resuming,
            "task_id": record.task.id,
            "context_id": record.task.context_id,
        }
        # The server's side of a remote call: its span (a child of the caller's, when the
        # request carried a traceparent) is current while the executor runs.
        tenant = context.tenant or None
        async with observe("remote", "call", tenant=tenant, attributes=attributes) as unit:
            await self._run_task(record, live)
            if unit.active:
                state = record.task.status.state
                unit.attributes["state"] = state.value
                if state in (TaskState.FAILED, TaskState.REJECTED):
                    unit.attributes["status"] = "error"
                    unit.attributes["error"] = f"the task ended {state.value}"
                    unit.attributes["error_type"] = "TaskFailed"
                elif state is TaskState.CANCELED:
                    unit.attributes["status"] = "cancelled"

    async def _run_task(self, record: TaskRecord, live: _Live) -> None:
        updater = TaskUpdater(self, record)
        try:
            if record.task.status.state != TaskState.WORKING:
                await updater.working()
            await self._executor.execute(live.context, updater)
            if record.task.status.state not in _SETTLED:
                await updater.complete()
        except asyncio.CancelledError:
            # Cancelled by `cancel` (which records the state itself) or at shutdown.
            if record.task.status.state not in _SETTLED:
                await self._set_status(record, TaskState.CANCELED, None)
            raise
        except Exception as exc:  # the executor's failure is the task's, never the server's
            if record.task.status.state not in TERMINAL_STATES:
                text = f"{type(exc).__name__}: {describe_exception(exc)}"
                await self._set_status(record, TaskState.FAILED, _text_message(text, record.task))
        finally:
            live.settled.set()

    # -- cancel -------------------------------------------------------------------------------

    async def cancel(self, principal: Principal, task_id: str) -> Task:
        record = await self._record(principal, task_id)
        if record.task.status.state in TERMINAL_STATES:
            raise TaskNotCancelableError(
                f"task {task_id!r} has already finished ({record.task.status.state.value})"
            )
        live = self._live.get(task_id)
        await self._set_status(record, TaskState.CANCELED, None)
        if live is not None:
            with contextlib.suppress(Exception):
                await self._executor.cancel(live.context)
            runner = live.runner
            if runner is not None and not runner.done():
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            live.settled.set()
        return record.task

    async def aclose(self) -> None:
        """Cancel every running task (they are recorded as canceled)."""
        runners = [lv.runner for lv in self._live.values() if lv.runner and not lv.runner.done()]
        for runner in runners:
            runner.cancel()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        self._live.clear()

    # -- push configs -------------------------------------------------------------------------

    async def _check_push(self, config: TaskPushNotificationConfig) -> None:
        if self._push is None:
            raise PushNotificationNotSupportedError(
                "this agent sends no push notifications; subscribe to the task instead"
            )
        try:
            await self._push.validate(config.url)
        except ValueError as exc:
            raise InvalidParamsError(describe_exception(exc)) from None

    def _store_push(self, record: TaskRecord, config: TaskPushNotificationConfig) -> None:
        config = config.model_copy(
            update={"id": config.id or new_id(), "task_id": record.task.id, "tenant": None}
        )
        record.push_configs[config.id or ""] = config

    async def set_push_config(
        self, principal: Principal, config: TaskPushNotificationConfig
    ) -> TaskPushNotificationConfig:
        record = await self._record(principal, config.task_id or "")
        await self._check_push(config)
        self._store_push(record, config)
        await self._store.save(record)
        return list(record.push_configs.values())[-1]

    async def get_push_config(
        self, principal: Principal, task_id: str, config_id: str
    ) -> TaskPushNotificationConfig:
        record = await self._record(principal, task_id)
        config = record.push_configs.get(config_id)
        if config is None:
            raise TaskNotFoundError(f"task {task_id!r} has no push config {config_id!r}")
        return config

    async def list_push_configs(
        self, principal: Principal, task_id: str
    ) -> list[TaskPushNotificationConfig]:
        return list((await self._record(principal, task_id)).push_configs.values())

    async def delete_push_config(self, principal: Principal, task_id: str, config_id: str) -> None:
        record = await self._record(principal, task_id)
        if record.push_configs.pop(config_id, None) is None:
            raise TaskNotFoundError(f"task {task_id!r} has no push config {config_id!r}")
        await self._store.save(record)

    # -- applying updates ---------------------------------------------------------------------

    async def _set_status(
        self, record: TaskRecord, state: TaskState, message: Message | None
    ) -> None:
        task = record.task
        if task.status.state in TERMINAL_STATES:
            return  # a finished task never changes again (e.g. a late update after cancel)
        task.status = TaskStatus(state=state, message=message, timestamp=now_timestamp())
        if message is not None:
            task.history.append(message)
        event = StreamResponse(
            status_update=TaskStatusUpdateEvent(
                task_id=task.id, context_id=task.context_id, status=task.status
            )
        )
        await self._publish(record, event, final=state in _SETTLED)

    async def _add_artifact(
        self, record: TaskRecord, artifact: Artifact, append: bool, last_chunk: bool
    ) -> None:
        task = record.task
        if task.status.state in TERMINAL_STATES:
            return
        existing = next((a for a in task.artifacts if a.artifact_id == artifact.artifact_id), None)
        if append and existing is not None:
            existing.parts.extend(artifact.parts)
        else:
            task.artifacts.append(artifact.model_copy(deep=True))
        event = StreamResponse(
            artifact_update=TaskArtifactUpdateEvent(
                task_id=task.id,
                context_id=task.context_id,
                artifact=artifact,
                append=append or None,
                last_chunk=last_chunk or None,
            )
        )
        await self._publish(record, event, final=False)

    async def _publish(self, record: TaskRecord, event: StreamResponse, *, final: bool) -> None:
        live = self._live.get(record.task.id)
        if live is not None:
            for queue in list(live.subscribers):
                queue.put_nowait(event)
                if final:
                    queue.put_nowait(None)
        if self._push is not None and record.push_configs:
            body = to_wire(event)
            for config in record.push_configs.values():
                self._push.submit(body, config)
        await self._store.save(record)
