"""Artifacts: content a tool keeps out of the model's prompt (PenguiFlow 3.11's
`penguiflow.artifacts` names).

A tool stores bytes or a long text through `ctx.artifacts` (a `ScopedArtifacts`) and returns
the `ArtifactRef`; the model sees the reference, never the content. Stores implement the
`ArtifactStore` protocol: `InMemoryArtifactStore` (development, tests), `NoOpArtifactStore`
(keeps nothing), `StateStoreArtifactStore` (over a state store's artifact capability), and
whatever a state store offers as its `artifact_store` (`discover_artifact_store`).

docs/planner-tools.md describes them with the rest of what a tool receives.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from penguiflow.errors import InvalidTypeError
from penguiflow.state import InMemoryStateStore

from ._artifact_adapter import StateStoreArtifactStore
from ._artifact_models import (
    ArtifactLimitError,
    ArtifactRef,
    ArtifactRetentionConfig,
    ArtifactScope,
    ArtifactStore,
    sanitize_artifact_namespace,
)
from ._artifact_stores import InMemoryArtifactStore, NoOpArtifactStore

__all__ = [
    "ArtifactLimitError",
    "ArtifactRef",
    "ArtifactRetentionConfig",
    "ArtifactScope",
    "ArtifactStore",
    "InMemoryArtifactStore",
    "NoOpArtifactStore",
    "ScopedArtifacts",
    "StateStoreArtifactStore",
    "discover_artifact_store",
    "sanitize_artifact_namespace",
]


class ScopedArtifacts:
    """A tool's view of an artifact store, bound to one owner (tenant, user, session) and
    trace. Writes record the whole scope; reads, listing and deletion only reach artifacts
    whose owner agrees with this one. Immutable: it cannot be re-pointed at someone else.

    The access rule (PenguiFlow's): an artifact is refused when, for tenant, user or
    session, both it and this view have a value and the values differ. An artifact stored
    without a scope is open to every view, and a view missing a field does not check it, so
    a planner whose `tool_context` names no session gives tools no session isolation.
    `list()` returns this owner's artifacts from every trace.
    """

    __slots__ = ("_read_scope", "_scope", "_store")

    _store: ArtifactStore
    _scope: ArtifactScope
    _read_scope: ArtifactScope

    def __init__(
        self,
        store: ArtifactStore,
        *,
        tenant_id: str | None,
        user_id: str | None,
        session_id: str | None,
        trace_id: str | None,
    ) -> None:
        scope = ArtifactScope(
            tenant_id=tenant_id, user_id=user_id, session_id=session_id, trace_id=trace_id
        )
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_scope", scope)
        object.__setattr__(self, "_read_scope", scope.model_copy(update={"trace_id": None}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"ScopedArtifacts is immutable (tried to set {name!r}); build a new one for "
            "another scope"
        )

    def __repr__(self) -> str:
        return f"ScopedArtifacts(scope={self._scope!r})"

    @property
    def scope(self) -> ArtifactScope:
        """The scope every write records (a copy: changing it changes nothing here)."""
        return self._scope.model_copy()

    async def upload(
        self,
        data: bytes | str,
        *,
        mime_type: str | None = None,
        filename: str | None = None,
        namespace: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ArtifactRef:
        """Store `data` (text is stored as UTF-8, `text/plain` unless `mime_type` says
        otherwise) under this view's scope and return its reference."""
        if isinstance(data, str):
            return await self._store.put_text(
                data,
                mime_type=mime_type or "text/plain",
                filename=filename,
                namespace=namespace,
                scope=self._scope,
                meta=meta,
            )
        if isinstance(data, (bytes, bytearray, memoryview)):
            return await self._store.put_bytes(
                bytes(data),
                mime_type=mime_type,
                filename=filename,
                namespace=namespace,
                scope=self._scope,
                meta=meta,
            )
        raise InvalidTypeError(
            f"artifacts.upload() takes bytes or str, got {type(data).__name__}; encode it "
            "first (json.dumps(...) for data, .encode() for text)"
        )

    async def _visible_ref(self, artifact_id: str) -> ArtifactRef | None:
        ref = await self._store.get_ref(artifact_id)
        return ref if ref is not None and self._allows(ref) else None

    async def download(self, artifact_id: str) -> bytes | None:
        """The artifact's bytes; None when it is unknown, expired, or someone else's."""
        if await self._visible_ref(artifact_id) is None:
            return None
        return await self._store.get(artifact_id)

    async def get_metadata(self, artifact_id: str) -> ArtifactRef | None:
        """The artifact's reference; None when it is unknown, expired, or someone else's."""
        return await self._visible_ref(artifact_id)

    async def list(self) -> list[ArtifactRef]:
        """This owner's artifacts (every trace)."""
        return await self._store.list(scope=self._read_scope)

    async def exists(self, artifact_id: str) -> bool:
        """Whether the artifact exists and this view may read it."""
        return await self._visible_ref(artifact_id) is not None

    async def delete(self, artifact_id: str) -> bool:
        """Delete the artifact if this view may; whether something was deleted."""
        if await self._visible_ref(artifact_id) is None:
            return False
        return await self._store.delete(artifact_id)

    def _allows(self, ref: ArtifactRef) -> bool:
        if ref.scope is None:
            return True
        for name in ("tenant_id", "user_id", "session_id"):
            mine = getattr(self._scope, name)
            theirs = getattr(ref.scope, name)
            if mine is not None and theirs is not None and mine != theirs:
                return False
        return True


# One artifact store per state store, so every planner and run sharing a state store shares
# its artifacts (and the adapter's per-process records). Weak keys: forgetting the state store
# forgets its artifacts.
_DISCOVERED: weakref.WeakKeyDictionary[Any, ArtifactStore] = weakref.WeakKeyDictionary()


def _remembered(state_store: Any, build: Callable[[Any], ArtifactStore]) -> ArtifactStore:
    try:
        found = _DISCOVERED.get(state_store)
    except TypeError:  # unhashable or not weakly referenceable: build one each time
        result: ArtifactStore = build(state_store)
        return result
    if found is None:
        found = build(state_store)
        _DISCOVERED[state_store] = found
    return found


def _in_memory_for(_state_store: Any) -> ArtifactStore:
    return InMemoryArtifactStore()


def discover_artifact_store(state_store: Any) -> ArtifactStore | None:
    """The artifact store that comes with `state_store`, or None.

    In order: its `artifact_store` attribute when that is an `ArtifactStore`; the state
    store itself when it is one; for penguiflow's `InMemoryStateStore`, an
    `InMemoryArtifactStore` that lives as long as it (PenguiFlow's in-memory state store has
    one too); for a store with the artifacts capability (`put_artifact`/`get_artifact`), a
    `StateStoreArtifactStore` over it. The same state store always gives the same artifact
    store. With None the planner uses a `NoOpArtifactStore`, as PenguiFlow's does."""
    if state_store is None:
        return None
    candidate = getattr(state_store, "artifact_store", None)
    if isinstance(candidate, ArtifactStore):
        return candidate
    if isinstance(state_store, ArtifactStore):
        return state_store
    if isinstance(state_store, InMemoryStateStore):
        return _remembered(state_store, _in_memory_for)
    if callable(getattr(state_store, "put_artifact", None)) and callable(
        getattr(state_store, "get_artifact", None)
    ):
        return _remembered(state_store, StateStoreArtifactStore)
    return None
