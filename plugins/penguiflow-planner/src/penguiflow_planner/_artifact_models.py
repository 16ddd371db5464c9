"""What an artifact is (`ArtifactRef`, `ArtifactScope`), what a store of them does
(`ArtifactStore`), and the retention limits a store enforces (PenguiFlow 3.11's names).

An artifact is content kept out of the model's prompt (a PDF, an image, a long text): a tool
stores it and shows the model only the compact `ArtifactRef`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from penguiflow.errors import PenguiFlowError

__all__ = [
    "ID_DIGITS",
    "ArtifactLimitError",
    "ArtifactRef",
    "ArtifactRetentionConfig",
    "ArtifactScope",
    "ArtifactStore",
    "TextAsBytes",
    "artifact_id",
    "owner_of",
    "sanitize_artifact_namespace",
    "scope_matches",
]


class ArtifactLimitError(PenguiFlowError, ValueError):
    """An artifact does not fit the store's retention limits (`ArtifactRetentionConfig`):
    too large on its own, or over a session's or trace's budget with eviction turned off.
    The message names the limit and how to raise it."""


class ArtifactScope(BaseModel):
    """Who an artifact belongs to. A field left None is not recorded (on a write) or not
    filtered on (in `ArtifactStore.list`)."""

    tenant_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    trace_id: str | None = None


class ArtifactRef(BaseModel):
    """The compact reference to a stored artifact: the only part of it a prompt should hold.

    `id` is what `get`, `get_ref`, `delete` and `exists` take; `sha256` is the content's
    digest; `source` holds free-form details (the producing tool, warnings, a preview)."""

    id: str
    mime_type: str | None = None
    size_bytes: int | None = None
    filename: str | None = None
    sha256: str | None = None
    scope: ArtifactScope | None = None
    namespace: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)


class ArtifactRetentionConfig(BaseModel):
    """Limits an artifact store enforces (`InMemoryArtifactStore` enforces all of them).

    `ttl_seconds` (0 or less: never expire) counts from when an artifact was stored. The
    session limits apply to the artifacts sharing a tenant, user and session; the trace
    limits to those sharing a trace. When a limit would be passed, `cleanup_strategy`
    evicts that group's least recently used (`lru`) or oldest (`fifo`) artifacts; with
    `none` the write fails with `ArtifactLimitError` instead."""

    ttl_seconds: int = 3600
    max_artifact_bytes: int = 50 * 1024 * 1024
    max_session_bytes: int = 500 * 1024 * 1024
    max_trace_bytes: int = 100 * 1024 * 1024
    max_artifacts_per_trace: int = 100
    max_artifacts_per_session: int = 1000
    cleanup_strategy: Literal["lru", "fifo", "none"] = "lru"


class TextAsBytes:
    """`put_text` as the UTF-8 bytes of the text, through the store's own `put_bytes`."""

    async def put_bytes(
        self,
        data: bytes,
        *,
        mime_type: str | None = None,
        filename: str | None = None,
        namespace: str | None = None,
        scope: ArtifactScope | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ArtifactRef:
        raise NotImplementedError

    async def put_text(
        self,
        text: str,
        *,
        mime_type: str = "text/plain",
        filename: str | None = None,
        namespace: str | None = None,
        scope: ArtifactScope | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ArtifactRef:
        return await self.put_bytes(
            text.encode("utf-8"),
            mime_type=mime_type,
            filename=filename,
            namespace=namespace,
            scope=scope,
            meta=meta,
        )


@runtime_checkable
class ArtifactStore(Protocol):
    """Where artifacts live. Every method is async and safe to call concurrently.

    `put_bytes`/`put_text` store content and return its reference (storing the same content
    for the same owner again returns the same reference); `get` returns the bytes, `get_ref`
    the reference, both None when the artifact is unknown or expired; `delete` says whether
    something was deleted; `list(scope=...)` returns the references whose scope has every
    non-None field of `scope` (all of them when `scope` is None). A store records scopes but
    does not enforce them: `ScopedArtifacts` does, for tools."""

    async def put_bytes(
        self,
        data: bytes,
        *,
        mime_type: str | None = None,
        filename: str | None = None,
        namespace: str | None = None,
        scope: ArtifactScope | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ArtifactRef: ...

    async def put_text(
        self,
        text: str,
        *,
        mime_type: str = "text/plain",
        filename: str | None = None,
        namespace: str | None = None,
        scope: ArtifactScope | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ArtifactRef: ...

    async def get(self, artifact_id: str) -> bytes | None: ...

    async def get_ref(self, artifact_id: str) -> ArtifactRef | None: ...

    async def delete(self, artifact_id: str) -> bool: ...

    async def exists(self, artifact_id: str) -> bool: ...

    async def list(self, *, scope: ArtifactScope | None = None) -> list[ArtifactRef]: ...


_NOT_ID_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def sanitize_artifact_namespace(namespace: str | None) -> str | None:
    """`namespace` reduced to letters, digits, `_` and `-` (runs of anything else become one
    `_`), for use in an artifact id; None when nothing is left."""
    if namespace is None:
        return None
    cleaned = _NOT_ID_SAFE.sub("_", namespace).strip("_-")
    return cleaned or None


def owner_of(scope: ArtifactScope | None) -> tuple[str | None, str | None, str | None]:
    """The (tenant, user, session) an artifact belongs to: what access checks compare."""
    if scope is None:
        return (None, None, None)
    return (scope.tenant_id, scope.user_id, scope.session_id)


def artifact_id(
    data: bytes, *, namespace: str | None, scope: ArtifactScope | None, digits: int = 12
) -> str:
    """`<namespace or art>_<digest>`, the digest over the owner and the content.

    PenguiFlow digests the content alone, so two sessions storing the same bytes share one
    id, and the second gets a reference scoped to the first that its own reads then refuse.
    Mixing the owner in gives each owner its own artifact; the same owner storing the same
    bytes again still gets the same id. `digits` grows when a store finds the short id taken
    by other content."""
    digest = hashlib.sha256()
    digest.update(json.dumps(owner_of(scope)).encode("utf-8"))
    digest.update(b"\x00")
    digest.update(data)
    prefix = sanitize_artifact_namespace(namespace) or "art"
    return f"{prefix}_{digest.hexdigest()[:digits]}"


#: id lengths a store tries, shortest first, when an id is already taken by other content
ID_DIGITS = (12, 24, 64)


def scope_matches(artifact_scope: ArtifactScope | None, wanted: ArtifactScope | None) -> bool:
    """Whether an artifact scoped `artifact_scope` is listed for the filter `wanted`: every
    non-None field of `wanted` must be equal in the artifact's scope (an artifact stored
    without a scope matches only filters with no fields set)."""
    if wanted is None:
        return True
    for name in ("tenant_id", "user_id", "session_id", "trace_id"):
        expected = getattr(wanted, name)
        if expected is None:
            continue
        actual = getattr(artifact_scope, name) if artifact_scope is not None else None
        if actual != expected:
            return False
    return True
