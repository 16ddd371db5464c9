"""Records a state store keeps: runtime events and remote-agent bindings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..metrics import FlowEvent

__all__ = ["RemoteBinding", "StoredEvent"]


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
