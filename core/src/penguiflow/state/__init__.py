"""State-store records, the `StateStore` driver interface and its optional capabilities.

Also the helpers for store authors: the `SessionLogs` mixin (task-update and steering logs),
the rules every store applies (`event_fingerprint`, `task_id_of`, `check_binding_query`,
`log_cursor`, `check_audit_query`, `select_audit`) and the errors a store raises
(`StoreClosedError` after `aclose()`, `StoreRequestError` for arguments it cannot serve).
A third-party store needs nothing else from the kernel. `InMemoryStateStore` is imported on
first use (`from penguiflow.state import InMemoryStateStore`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import SchemaVersionError, StateStoreError, StoreClosedError, StoreRequestError
from ._logs import SessionLogs
from ._models import AuditRecord, RemoteBinding, StoredEvent
from ._protocols import (
    CAPABILITIES,
    StateStore,
    SupportsArtifacts,
    SupportsAudit,
    SupportsConversationBindings,
    SupportsMemoryState,
    SupportsPlannerEvents,
    SupportsPlannerState,
    SupportsSteering,
    SupportsTasks,
    SupportsTrajectories,
    capabilities,
    missing_capabilities,
    require_capabilities,
)
from ._rules import (
    check_audit_query,
    check_binding_query,
    event_fingerprint,
    log_cursor,
    select_audit,
    task_id_of,
)

if TYPE_CHECKING:
    from .in_memory import InMemoryStateStore

__all__ = [
    "CAPABILITIES",
    "AuditRecord",
    "InMemoryStateStore",
    "RemoteBinding",
    "SchemaVersionError",
    "SessionLogs",
    "StateStore",
    "StateStoreError",
    "StoreClosedError",
    "StoreRequestError",
    "StoredEvent",
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
    "check_audit_query",
    "check_binding_query",
    "event_fingerprint",
    "log_cursor",
    "missing_capabilities",
    "require_capabilities",
    "select_audit",
    "task_id_of",
]


def __getattr__(name: str) -> Any:
    if name == "InMemoryStateStore":
        from .in_memory import InMemoryStateStore

        return InMemoryStateStore
    raise AttributeError(f"module 'penguiflow.state' has no attribute {name!r}")
