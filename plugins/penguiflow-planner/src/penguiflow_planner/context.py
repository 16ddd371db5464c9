"""What a planner tool's `ctx` offers (PenguiFlow 3.11's `penguiflow.planner.context`).

A tool is `async def fn(args: InModel, ctx: ToolContext) -> OutModel`. `ToolContext` and
`SessionKV` are protocols to annotate with; the planner passes its own implementation
(`PlannerToolContext`). `AnyContext` is for a function that also runs as a flow node, whose
`ctx` is then a `penguiflow.core.Context`. As in PenguiFlow, neither protocol is
runtime-checkable: annotate with them, do not `isinstance` against them.

docs/planner-tools.md describes each member.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from penguiflow.core import Context as _FlowContext

from ._artifact_models import ArtifactStore
from ._kv import KVScope, SessionKVConfig, SessionKVError, SessionKVValueError
from ._results import PlannerPauseReason
from ._tool_context import (
    InvalidPauseReasonError,
    PauseUnavailableError,
    PlannerToolContext,
    StreamChunkError,
)
from .artifacts import ScopedArtifacts

if TYPE_CHECKING:
    from ._kv import PlannerSessionKV
    from ._tool_context import EventEmittingArtifactStore
    from .artifacts import InMemoryArtifactStore, NoOpArtifactStore, StateStoreArtifactStore

__all__ = [
    "AnyContext",
    "InvalidPauseReasonError",
    "KVScope",
    "PauseUnavailableError",
    "PlannerPauseReason",
    "PlannerToolContext",
    "SessionKV",
    "SessionKVConfig",
    "SessionKVError",
    "SessionKVValueError",
    "StreamChunkError",
    "ToolContext",
]


class SessionKV(Protocol):
    """Durable key-value storage of a session (`ctx.kv`).

    Every method takes `scope` (`"session"`, the default: kept for the session; `"task"`:
    expires an hour after its last write) and `namespace` (default `tool:<tool name>`, so
    tools do not overwrite each other's keys). Writes publish a `kv_set`, `kv_patch`,
    `kv_init` or `kv_delete` event unless `emit_update=False`."""

    async def get(
        self, key: str, *, scope: KVScope = "session", namespace: str | None = None
    ) -> Any | None:
        """The value under `key`, or None."""
        ...

    async def set(
        self,
        key: str,
        value: Any,
        *,
        scope: KVScope = "session",
        namespace: str | None = None,
        emit_update: bool = True,
    ) -> Any:
        """Store `value` and return it as stored."""
        ...

    async def patch(
        self,
        key: str,
        patch: Mapping[str, Any],
        *,
        scope: KVScope = "session",
        namespace: str | None = None,
        emit_update: bool = True,
    ) -> Any:
        """Merge `patch` into the mapping under `key`; return the result."""
        ...

    async def get_or_init(
        self,
        key: str,
        default: Any,
        *,
        scope: KVScope = "session",
        namespace: str | None = None,
        emit_update: bool = True,
    ) -> Any:
        """The value under `key`, storing `default` first when there is none."""
        ...

    async def delete(
        self,
        key: str,
        *,
        scope: KVScope = "session",
        namespace: str | None = None,
        emit_update: bool = True,
    ) -> bool:
        """Delete the value under `key`; whether there was one."""
        ...


class ToolContext(Protocol):
    """The `ctx` a planner tool receives."""

    @property
    def llm_context(self) -> Mapping[str, Any]:
        """What the model sees of the caller's context (read-only)."""
        ...

    @property
    def tool_context(self) -> dict[str, Any]:
        """The caller's tool-only context (loggers, clients, ids); never shown to the model."""
        ...

    @property
    def meta(self) -> MutableMapping[str, Any]:
        """Deprecated: `tool_context` over `llm_context` in one mapping."""
        ...

    @property
    def _artifacts(self) -> ArtifactStore:
        """The raw artifact store, for framework code."""
        ...

    @property
    def artifacts(self) -> ScopedArtifacts:
        """The artifacts of this run's owner (`upload`, `download`, `list`, ...)."""
        ...

    @property
    def kv(self) -> SessionKV:
        """The session's key-value storage."""
        ...

    def pause(
        self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None = None
    ) -> Awaitable[Any]:
        """Stop the run and wait for a human (`await ctx.pause("approval_required", {...})`)."""
        ...

    def emit_chunk(
        self,
        stream_id: str,
        seq: int,
        text: str,
        *,
        done: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> Awaitable[None]:
        """Stream a piece of text."""
        ...

    def emit_artifact(
        self,
        stream_id: str,
        chunk: Any,
        *,
        done: bool = False,
        artifact_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Awaitable[None]:
        """Stream a piece of a structured artifact."""
        ...


AnyContext = ToolContext | _FlowContext
"""The `ctx` of a function used both as a planner tool and as a flow node."""


if TYPE_CHECKING:  # mypy proves the planner's implementations satisfy the protocols

    def _is_tool_context(ctx: PlannerToolContext) -> ToolContext:
        return ctx

    def _is_session_kv(kv: PlannerSessionKV) -> SessionKV:
        return kv

    def _are_artifact_stores(
        a: InMemoryArtifactStore,
        b: NoOpArtifactStore,
        c: StateStoreArtifactStore,
        d: EventEmittingArtifactStore,
    ) -> list[ArtifactStore]:
        return [a, b, c, d]
