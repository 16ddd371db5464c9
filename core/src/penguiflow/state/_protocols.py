"""The state-store driver interface and its optional capabilities.

Only `StateStore`'s three methods are required. Subsystems that need more (the planner's pause
state, memory, sessions...) probe for a capability protocol and fail with an error naming the
missing methods (`require_capabilities`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import InvalidTypeError
from ._models import AuditRecord, RemoteBinding, StoredEvent

__all__ = [
    "CAPABILITIES",
    "StateStore",
    "SupportsArtifacts",
    "SupportsAudit",
    "SupportsConversationBindings",
    "SupportsMemoryState",
    "SupportsPlannerEvents",
    "SupportsPlannerState",
    "SupportsSteering",
    "SupportsTasks",
    "SupportsTrajectories",
    "capabilities",
    "missing_capabilities",
    "require_capabilities",
]


@runtime_checkable
class StateStore(Protocol):
    """Durable history of a flow: events per trace and remote bindings.

    Drivers should also implement `async aclose()` (idempotent; afterwards every call raises
    `StoreClosedError`) and `async with` (`penguiflow.resources.AsyncResource` gives it).
    They are not part of the protocol, so older drivers still satisfy it: whoever closes a
    store calls `penguiflow.resources.aclose_resource`, which also accepts `close()`.
    """

    async def save_event(self, event: StoredEvent) -> None: ...

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]: ...

    async def save_remote_binding(self, binding: RemoteBinding) -> None: ...


@runtime_checkable
class SupportsPlannerState(Protocol):
    """Paused planner runs, keyed by a resume token. Tokens are single use: `consume`
    returns the state once and forgets it; a missing or used token gives `None`."""

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None: ...

    async def load_planner_state(self, token: str) -> dict[str, Any] | None: ...

    async def consume_planner_state(self, token: str) -> dict[str, Any] | None: ...


@runtime_checkable
class SupportsMemoryState(Protocol):
    """Short-term memory snapshots keyed by `MemoryKey.as_string()` (`v2:<tenant>:<user>:<session>`,
    each part percent-escaped, so distinct keys never share a snapshot)."""

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None: ...

    async def load_memory_state(self, key: str) -> dict[str, Any] | None: ...


@runtime_checkable
class SupportsTasks(Protocol):
    """Background tasks of a session (upserted by `task["task_id"]`) and their updates, an
    ordered log read with an exclusive `since_id` cursor (ids compare as integers)."""

    async def save_task(self, session_id: str, task: dict[str, Any]) -> None: ...

    async def list_tasks(self, session_id: str) -> Sequence[dict[str, Any]]: ...

    async def save_task_update(self, session_id: str, update: dict[str, Any]) -> str: ...

    async def list_task_updates(
        self, session_id: str, *, since_id: str | None = None
    ) -> Sequence[dict[str, Any]]: ...


@runtime_checkable
class SupportsSteering(Protocol):
    """Steering events for a session: an ordered log with an exclusive `since_id` cursor.

    Saving returns the event's id; an event carrying an `event_id` already saved is stored
    once and returns the first id."""

    async def save_steering(self, session_id: str, event: dict[str, Any]) -> str: ...

    async def list_steering(
        self, session_id: str, *, since_id: str | None = None
    ) -> Sequence[dict[str, Any]]: ...


@runtime_checkable
class SupportsTrajectories(Protocol):
    """Planner trajectories (serialised steps) per trace; saving again replaces."""

    async def save_trajectory(self, trace_id: str, trajectory: dict[str, Any]) -> None: ...

    async def get_trajectory(self, trace_id: str) -> dict[str, Any] | None: ...


@runtime_checkable
class SupportsPlannerEvents(Protocol):
    """Planner events (step start/finish, tool calls...) per trace."""

    async def save_planner_event(self, trace_id: str, event: dict[str, Any]) -> None: ...

    async def list_planner_events(self, trace_id: str) -> Sequence[dict[str, Any]]: ...


@runtime_checkable
class SupportsArtifacts(Protocol):
    """Binary artifacts kept out of prompts and returned by reference."""

    async def put_artifact(self, key: str, data: bytes, *, mime_type: str | None = None) -> str: ...

    async def get_artifact(self, ref: str) -> bytes | None: ...


@runtime_checkable
class SupportsConversationBindings(Protocol):
    """Lookup of remote bindings, e.g. to resume a conversation with a remote agent."""

    async def find_binding(
        self, *, trace_id: str | None = None, context_id: str | None = None
    ) -> RemoteBinding | None: ...

    async def list_bindings(self, trace_id: str) -> Sequence[RemoteBinding]: ...

    async def mark_binding_terminal(self, *, trace_id: str, task_id: str) -> None: ...


@runtime_checkable
class SupportsAudit(Protocol):
    """The audit trail: who changed what an agent may do or did (`AuditRecord`s).

    `save_audit` stores a record once per `record.id` (saving it again changes nothing).
    `list_audit(tenant)` returns the records of that tenant only (`None`: the records that
    belong to no tenant, never every tenant's), of one session when `session_id` is given,
    saved at or after `since` (seconds since the epoch): the most recent `limit`, oldest
    first (by `ts`, then save order). `check_audit_query` and `select_audit` in
    `penguiflow.state` apply these rules."""

    async def save_audit(self, record: AuditRecord) -> None: ...

    async def list_audit(
        self,
        tenant: str | None,
        *,
        session_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditRecord]: ...


CAPABILITIES: dict[str, type] = {
    "planner_state": SupportsPlannerState,
    "memory_state": SupportsMemoryState,
    "tasks": SupportsTasks,
    "steering": SupportsSteering,
    "trajectories": SupportsTrajectories,
    "planner_events": SupportsPlannerEvents,
    "artifacts": SupportsArtifacts,
    "conversation_bindings": SupportsConversationBindings,
    "audit": SupportsAudit,
}


def capabilities(store: object) -> frozenset[str]:
    """The optional capabilities `store` provides, by name (keys of `CAPABILITIES`)."""
    return frozenset(name for name, protocol in CAPABILITIES.items() if isinstance(store, protocol))


def missing_capabilities(store: object, methods: Iterable[str]) -> list[str]:
    """The names in `methods` that `store` does not provide as callables."""
    return [name for name in methods if not callable(getattr(store, name, None))]


def require_capabilities(store: object, *, feature: str, methods: Iterable[str]) -> None:
    """Raise `TypeError` naming what `store` lacks for `feature`."""
    missing = missing_capabilities(store, methods)
    if missing:
        raise InvalidTypeError(
            f"StateStore missing {missing} required for feature={feature}; "
            f"use a store that implements them (e.g. InMemoryStateStore) or disable {feature}"
        )
