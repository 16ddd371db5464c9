"""Where a session keeps its tasks, updates and steering events, so it survives a restart.

`SessionStateStore` is the small interface a `StreamingSession` writes through. Two
implementations ship here:

- `InMemorySessionStateStore`: per process, bounded logs; the default.
- `StateStoreSessionAdapter`: any kernel state store with the `tasks` and `steering`
  capabilities (`sqlite://`, `redis://`, `postgresql://`...). The store's update log hands
  out the cursors, so an update's `update_id` is its position in that log and
  `subscribe(since_id=...)` resumes exactly after it, in this process or the next. The
  session context is kept through the store's `memory_state` capability, under the key
  `session:<session_id>:context`.

The session context (`save_context`/`load_context`) is one JSON document per session, replaced
whole on every save; the session writes it in order and leaves live objects out of it.

Cursor rule, shared by both: `list_updates(since_id=X)` returns the updates after `X`
(exclusive), oldest first. `save_update` may return the id the store gave the update; the
session then publishes the update under that id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from penguiflow.errors import ConfigurationError
from penguiflow.state import require_capabilities

from ._context import json_copy
from .models import StateUpdate, TaskState
from .steering import SteeringEvent

__all__ = [
    "InMemorySessionStateStore",
    "SessionStateStore",
    "StateStoreSessionAdapter",
    "is_session_state_store",
]

_LOGGER = logging.getLogger("penguiflow_sessions.persistence")

#: Methods a kernel state store needs for `StateStoreSessionAdapter`.
_KERNEL_METHODS = (
    "save_task",
    "list_tasks",
    "save_task_update",
    "list_task_updates",
    "save_steering",
    "list_steering",
)


@runtime_checkable
class SessionStateStore(Protocol):
    """Persistence for one or many sessions, keyed by `session_id`.

    `limit` keeps the most recent entries (PenguiFlow's rule); `None` returns them all."""

    async def save_task(self, state: TaskState) -> None: ...

    async def save_update(self, update: StateUpdate) -> str | None: ...

    async def save_steering(self, event: SteeringEvent) -> None: ...

    async def list_tasks(self, session_id: str) -> Sequence[TaskState]: ...

    async def list_updates(
        self,
        session_id: str,
        *,
        task_id: str | None = None,
        since_id: str | None = None,
        limit: int | None = 500,
    ) -> Sequence[StateUpdate]: ...

    async def list_steering(
        self,
        session_id: str,
        *,
        task_id: str | None = None,
        since_id: str | None = None,
        limit: int | None = 500,
    ) -> Sequence[SteeringEvent]: ...

    async def save_context(self, session_id: str, context: dict[str, Any]) -> None:
        """Replace the saved context document of the session (a JSON dict)."""
        ...

    async def load_context(self, session_id: str) -> dict[str, Any] | None:
        """The last context document saved for the session, or None."""
        ...


def is_session_state_store(obj: object) -> bool:
    """Whether `obj` speaks `SessionStateStore` (and not only the kernel's dict API).

    Both have `save_task`; only a session store has `save_update`."""
    return callable(getattr(obj, "save_update", None)) and callable(
        getattr(obj, "list_updates", None)
    )


def _storable_task(state: TaskState) -> TaskState:
    """The form of `state` a store keeps: its context snapshot holds JSON values only.

    A foreground task's snapshot shares the live tool context (the task service, futures,
    clients), which can be neither copied nor serialised; like PenguiFlow's background
    snapshots, what is saved leaves those values out. `state` itself is not changed, so the
    running task keeps its live objects."""
    snapshot = state.context_snapshot
    saved = snapshot.model_copy(
        update={
            "llm_context": json_copy(snapshot.llm_context) or {},
            "tool_context": json_copy(snapshot.tool_context) or {},
            "memory": json_copy(snapshot.memory) or {},
            "artifacts": json_copy(snapshot.artifacts) or [],
        }
    )
    # Shallow on purpose: the deep copy (in-memory store) or the dump (kernel stores) that
    # follows must never walk the live snapshot.
    return state.model_copy(update={"context_snapshot": saved})


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigurationError(f"limit must be an integer >= 0 or None (all), got {limit!r}")


_T = TypeVar("_T")


def _tail(items: list[_T], limit: int | None) -> list[_T]:
    if limit is None:
        return items
    return items[-limit:] if limit else []


def _digits(cursor: str, *, what: str) -> int:
    text = cursor.strip()
    if not (text.isascii() and text.isdecimal()):
        raise ConfigurationError(
            f"since_id must be an {what} id returned by this session (a string of digits), "
            f"got {cursor!r}"
        )
    return int(text)


def _after_event(events: list[SteeringEvent], since_id: str | None) -> list[SteeringEvent]:
    # Steering cursors are event ids (PenguiFlow's rule): resume after the matching one.
    if since_id is None:
        return events
    for index, event in enumerate(events):
        if event.event_id == since_id:
            return events[index + 1 :]
    raise ConfigurationError(
        f"since_id {since_id!r} is not the event_id of a stored steering event of this "
        "session; pass one returned by list_steering() or None"
    )


class InMemorySessionStateStore:
    """Tasks, updates and steering per session in this process.

    Update ids are the ones the updates carry (`new_update_id`: increasing digits), so the
    cursor compares as an integer; the oldest entries are dropped past the bounds."""

    def __init__(
        self,
        *,
        max_updates_per_session: int = 10_000,
        max_steering_events_per_session: int = 10_000,
    ) -> None:
        for name, value in (
            ("max_updates_per_session", max_updates_per_session),
            ("max_steering_events_per_session", max_steering_events_per_session),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        self._tasks: dict[str, dict[str, TaskState]] = {}
        self._updates: dict[str, list[StateUpdate]] = {}
        self._steering: dict[str, list[SteeringEvent]] = {}
        self._contexts: dict[str, dict[str, Any]] = {}
        self._max_updates = max_updates_per_session
        self._max_steering = max_steering_events_per_session

    async def save_task(self, state: TaskState) -> None:
        # A copy: the registry keeps mutating its own object.
        saved = _storable_task(state).model_copy(deep=True)
        self._tasks.setdefault(state.session_id, {})[state.task_id] = saved

    async def save_update(self, update: StateUpdate) -> str | None:
        _digits(update.update_id, what="update")
        log = self._updates.setdefault(update.session_id, [])
        log.append(update)
        if len(log) > self._max_updates:
            del log[: len(log) - self._max_updates]
        return None

    async def save_steering(self, event: SteeringEvent) -> None:
        log = self._steering.setdefault(event.session_id, [])
        if any(saved.event_id == event.event_id for saved in log):
            return  # stored once, like the kernel's steering log
        log.append(event)
        if len(log) > self._max_steering:
            del log[: len(log) - self._max_steering]

    async def list_tasks(self, session_id: str) -> Sequence[TaskState]:
        return [t.model_copy(deep=True) for t in self._tasks.get(session_id, {}).values()]

    async def list_updates(
        self,
        session_id: str,
        *,
        task_id: str | None = None,
        since_id: str | None = None,
        limit: int | None = 500,
    ) -> Sequence[StateUpdate]:
        _check_limit(limit)
        after = _digits(since_id, what="update") if since_id is not None else -1
        updates = [
            u
            for u in self._updates.get(session_id, [])
            if int(u.update_id) > after and (task_id is None or u.task_id == task_id)
        ]
        return _tail(updates, limit)

    async def list_steering(
        self,
        session_id: str,
        *,
        task_id: str | None = None,
        since_id: str | None = None,
        limit: int | None = 500,
    ) -> Sequence[SteeringEvent]:
        _check_limit(limit)
        events = _after_event(list(self._steering.get(session_id, [])), since_id)
        return _tail([e for e in events if task_id is None or e.task_id == task_id], limit)

    async def save_context(self, session_id: str, context: dict[str, Any]) -> None:
        # A JSON copy, as a database would keep: later changes of `context` do not leak in.
        self._contexts[session_id] = json_copy(context) or {}

    async def load_context(self, session_id: str) -> dict[str, Any] | None:
        saved = self._contexts.get(session_id)
        return json_copy(saved) if saved is not None else None


def _context_key(session_id: str) -> str:
    # Apart from the planner's short-term memory keys (`v2:<tenant>:...`) in the same table.
    return f"session:{session_id}:context"


class StateStoreSessionAdapter:
    """A `SessionStateStore` over a kernel state store's `tasks` and `steering` capabilities.

    Tasks are upserted by id (`save_task`), updates go to the task-update log (its id becomes
    the update's `update_id`), steering events to the steering log (stored once per
    `event_id`). `InvalidTypeError` at construction names the methods a store lacks.

    The context document goes through `save_memory_state`/`load_memory_state`; a store
    without them keeps tasks and updates only (a warning says so once)."""

    def __init__(self, store: Any) -> None:
        require_capabilities(store, feature="sessions", methods=_KERNEL_METHODS)
        self.store = store
        self._keeps_context = callable(getattr(store, "save_memory_state", None)) and callable(
            getattr(store, "load_memory_state", None)
        )
        self._warned = False

    async def save_context(self, session_id: str, context: dict[str, Any]) -> None:
        if not self._keeps_context:
            if not self._warned:
                self._warned = True
                _LOGGER.warning(
                    "state store %s has no save_memory_state/load_memory_state (the "
                    "'memory_state' capability), so session contexts are kept in memory only "
                    "and lost on restart; use a store that has them (sqlite://, redis://, "
                    "postgresql://)",
                    type(self.store).__name__,
                )
            return
        await self.store.save_memory_state(_context_key(session_id), context)

    async def load_context(self, session_id: str) -> dict[str, Any] | None:
        if not self._keeps_context:
            return None
        saved = await self.store.load_memory_state(_context_key(session_id))
        return dict(saved) if saved is not None else None

    async def save_task(self, state: TaskState) -> None:
        await self.store.save_task(state.session_id, _storable_task(state).model_dump(mode="json"))

    async def save_update(self, update: StateUpdate) -> str | None:
        cursor: str = await self.store.save_task_update(
            update.session_id, update.model_dump(mode="json")
        )
        return str(cursor)

    async def save_steering(self, event: SteeringEvent) -> None:
        await self.store.save_steering(event.session_id, event.model_dump(mode="json"))

    async def list_tasks(self, session_id: str) -> Sequence[TaskState]:
        rows = await self.store.list_tasks(session_id)
        return [TaskState.model_validate(row) for row in rows]

    async def list_updates(
        self,
        session_id: str,
        *,
        task_id: str | None = None,
        since_id: str | None = None,
        limit: int | None = 500,
    ) -> Sequence[StateUpdate]:
        _check_limit(limit)
        if since_id is not None:
            _digits(since_id, what="update")
        rows = await self.store.list_task_updates(session_id, since_id=since_id)
        updates: list[StateUpdate] = []
        for row in rows:
            data = {key: value for key, value in row.items() if key != "id"}
            # The log's id is the cursor; the id saved inside the entry was provisional.
            data["update_id"] = str(row["id"])
            update = StateUpdate.model_validate(data)
            if task_id is None or update.task_id == task_id:
                updates.append(update)
        return _tail(updates, limit)

    async def list_steering(
        self,
        session_id: str,
        *,
        task_id: str | None = None,
        since_id: str | None = None,
        limit: int | None = 500,
    ) -> Sequence[SteeringEvent]:
        _check_limit(limit)
        rows = await self.store.list_steering(session_id)
        events = [
            SteeringEvent.model_validate({k: v for k, v in row.items() if k != "id"})
            for row in rows
        ]
        events = _after_event(events, since_id)
        return _tail([e for e in events if task_id is None or e.task_id == task_id], limit)
