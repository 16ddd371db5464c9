"""Records a state store keeps: runtime events, remote-agent bindings and audit records."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..metrics import FlowEvent

__all__ = ["AuditRecord", "RemoteBinding", "StoredEvent"]


@dataclass(slots=True)
class StoredEvent:
    """A persisted `FlowEvent`: `kind` is the event type, `payload` its `to_payload()`."""

    trace_id: str | None
    ts: float
    kind: str
    node_name: str | None
    node_id: str | None
    payload: dict[str, Any]

    @classmethod
    def from_flow_event(cls, event: FlowEvent) -> StoredEvent:
        return cls(
            trace_id=event.trace_id,
            ts=event.ts,
            kind=event.event_type,
            node_name=event.node_name,
            node_id=event.node_id,
            payload=event.to_payload(),
        )


@dataclass(slots=True)
class RemoteBinding:
    """Which remote task (at which agent) works for a trace; saved by `RemoteNode`."""

    trace_id: str
    context_id: str | None
    task_id: str
    agent_url: str
    router_session_id: str | None = None
    remote_skill: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    last_remote_task_id: str | None = None
    is_terminal: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


def _new_audit_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class AuditRecord:
    """One operation that changed what an agent may do or did, with who did it and when.

    `action` says what happened (`steering.cancel`, `approval.approve`, `planner.pause`,
    `tool.write`, `plugin.load_failed`...), `target` what it was done to (a task id, a tool
    name, a plugin name, the digest of a pause token), `outcome` how it ended (`ok`,
    `parked`, `refused`, `error`...). `tenant`, `user` and `source` (`planner`, `session`,
    `plugins`, `api`) say who; `ts` (seconds since the epoch) when. `details` is a small
    JSON document, already redacted by whoever built the record (`penguiflow.audit.record`
    does it): stores keep it as given. `id` makes saving idempotent."""

    action: str
    source: str
    tenant: str | None = None
    user: str | None = None
    session_id: str | None = None
    target: str | None = None
    outcome: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None
    ts: float = field(default_factory=time.time)
    id: str = field(default_factory=_new_audit_id)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (what durable stores persist)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """The record `to_dict()` gave; unknown keys (a newer writer's) are ignored."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)
