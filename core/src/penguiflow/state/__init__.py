"""State-store records, the `StateStore` driver interface and its optional capabilities.

`InMemoryStateStore` is imported on first use (`from penguiflow.state import InMemoryStateStore`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._models import RemoteBinding, StoredEvent
from ._protocols import (
    CAPABILITIES,
    StateStore,
    SupportsArtifacts,
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

if TYPE_CHECKING:
    from .in_memory import InMemoryStateStore

__all__ = [
    "CAPABILITIES",
    "InMemoryStateStore",
    "RemoteBinding",
    "StateStore",
    "StoredEvent",
    "SupportsArtifacts",
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


def __getattr__(name: str) -> Any:
    if name == "InMemoryStateStore":
        from .in_memory import InMemoryStateStore

        return InMemoryStateStore
    raise AttributeError(f"module 'penguiflow.state' has no attribute {name!r}")
