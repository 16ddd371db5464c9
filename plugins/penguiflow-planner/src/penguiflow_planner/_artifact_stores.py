"""The two artifact stores that need nothing else: `InMemoryArtifactStore` (development and
tests; enforces every retention limit) and `NoOpArtifactStore` (what a planner without any
store uses: it keeps nothing and says so in each reference)."""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._artifact_models import (
    ID_DIGITS,
    ArtifactLimitError,
    ArtifactRef,
    ArtifactRetentionConfig,
    ArtifactScope,
    TextAsBytes,
    artifact_id,
    owner_of,
    scope_matches,
)

__all__ = ["InMemoryArtifactStore", "NoOpArtifactStore"]

logger = logging.getLogger("penguiflow.planner")


class NoOpArtifactStore:
    """Keeps nothing: each write returns a reference marked `truncated` with a `warning`
    (and, for text, a `preview` of its first `max_inline_preview` characters), every read
    finds nothing. The first write logs a warning naming how to configure a real store."""

    def __init__(self, max_inline_preview: int = 500) -> None:
        self._max_preview = max_inline_preview
        self._warned = False

    def _warn_once(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "an artifact was written but no artifact store is configured, so its content "
                "is dropped; give the planner a state store that keeps artifacts, or "
                "artifact_store=InMemoryArtifactStore() (penguiflow_planner.artifacts)"
            )

    def _ref(
        self,
        data: bytes,
        *,
        mime_type: str | None,
        filename: str | None,
        namespace: str | None,
        scope: ArtifactScope | None,
        source: dict[str, Any],
    ) -> ArtifactRef:
        self._warn_once()
        return ArtifactRef(
            id=artifact_id(data, namespace=namespace, scope=scope),
            mime_type=mime_type,
            size_bytes=len(data),
            filename=filename,
            sha256=hashlib.sha256(data).hexdigest(),
            scope=scope,
            namespace=namespace,
            source=source,
        )

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
        source = {
            **(meta or {}),
            "warning": "content not stored: no artifact store is configured",
            "truncated": True,
            "original_size": len(data),
        }
        return self._ref(
            data,
            mime_type=mime_type,
            filename=filename,
            namespace=namespace,
            scope=scope,
            source=source,
        )

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
        preview = text[: self._max_preview]
        if len(text) > self._max_preview:
            preview += f"\n[... {len(text) - self._max_preview} more characters not kept]"
        source = {
            **(meta or {}),
            "warning": "text truncated: no artifact store is configured",
            "truncated": True,
            "preview": preview,
            "original_size": len(text),
        }
        return self._ref(
            text.encode("utf-8"),
            mime_type=mime_type,
            filename=filename,
            namespace=namespace,
            scope=scope,
            source=source,
        )

    async def get(self, artifact_id: str) -> bytes | None:
        return None

    async def get_ref(self, artifact_id: str) -> ArtifactRef | None:
        return None

    async def delete(self, artifact_id: str) -> bool:
        return False

    async def exists(self, artifact_id: str) -> bool:
        return False

    async def list(self, *, scope: ArtifactScope | None = None) -> list[ArtifactRef]:
        return []


@dataclass(slots=True)
class _Stored:
    ref: ArtifactRef
    data: bytes
    created_at: float
    order: int  # insertion order, for fifo eviction


class InMemoryArtifactStore(TextAsBytes):
    """Artifacts in process memory, with every limit of `retention` enforced.

    `scope_filter` is the scope given to artifacts stored without one. `time_source` (wall
    seconds; `time.time` by default) measures `ttl_seconds`; tests pass a fake clock. Reads
    (`get`) make an artifact recently used for `lru` eviction.
    """

    def __init__(
        self,
        retention: ArtifactRetentionConfig | None = None,
        scope_filter: ArtifactScope | None = None,
        *,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        self._retention = retention or ArtifactRetentionConfig()
        self._scope_filter = scope_filter
        self._now = time_source
        # Least recently used first: `get` moves an artifact to the end.
        self._artifacts: OrderedDict[str, _Stored] = OrderedDict()
        self._counter = itertools.count()
        self._total_bytes = 0

    @property
    def retention(self) -> ArtifactRetentionConfig:
        return self._retention

    @property
    def total_bytes(self) -> int:
        """Bytes held now."""
        return self._total_bytes

    @property
    def count(self) -> int:
        """Artifacts held now."""
        return len(self._artifacts)

    def clear(self) -> None:
        """Forget every artifact."""
        self._artifacts.clear()
        self._total_bytes = 0

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
        limits = self._retention
        if len(data) > limits.max_artifact_bytes:
            raise ArtifactLimitError(
                f"artifact of {len(data)} bytes is over max_artifact_bytes="
                f"{limits.max_artifact_bytes}; store less, or raise the limit with "
                "InMemoryArtifactStore(retention=ArtifactRetentionConfig(max_artifact_bytes=...))"
            )
        self._expire()
        scope = scope if scope is not None else self._scope_filter
        sha256 = hashlib.sha256(data).hexdigest()
        for digits in ID_DIGITS:
            candidate = artifact_id(data, namespace=namespace, scope=scope, digits=digits)
            existing = self._artifacts.get(candidate)
            if existing is None:
                break
            if existing.ref.sha256 == sha256 and owner_of(existing.ref.scope) == owner_of(scope):
                # The same owner stored the same content: one artifact, now recently used.
                self._artifacts.move_to_end(candidate)
                return existing.ref
        else:  # pragma: no cover - a full SHA-256 collision
            raise ArtifactLimitError(f"artifact id {candidate!r} collides at every length")
        self._make_room(len(data), scope)
        ref = ArtifactRef(
            id=candidate,
            mime_type=mime_type,
            size_bytes=len(data),
            filename=filename,
            sha256=sha256,
            scope=scope,
            namespace=namespace,
            source=dict(meta or {}),
        )
        self._artifacts[candidate] = _Stored(ref, bytes(data), self._now(), next(self._counter))
        self._total_bytes += len(data)
        return ref

    async def get(self, artifact_id: str) -> bytes | None:
        self._expire()
        stored = self._artifacts.get(artifact_id)
        if stored is None:
            return None
        self._artifacts.move_to_end(artifact_id)
        return stored.data

    async def get_ref(self, artifact_id: str) -> ArtifactRef | None:
        self._expire()
        stored = self._artifacts.get(artifact_id)
        return stored.ref if stored is not None else None

    async def delete(self, artifact_id: str) -> bool:
        return self._drop(artifact_id)

    async def exists(self, artifact_id: str) -> bool:
        self._expire()
        return artifact_id in self._artifacts

    async def list(self, *, scope: ArtifactScope | None = None) -> list[ArtifactRef]:
        self._expire()
        return [s.ref for s in self._artifacts.values() if scope_matches(s.ref.scope, scope)]

    # -- internals -----------------------------------------------------------------------------

    def _drop(self, artifact_id: str) -> bool:
        stored = self._artifacts.pop(artifact_id, None)
        if stored is None:
            return False
        self._total_bytes -= len(stored.data)
        return True

    def _expire(self) -> None:
        ttl = self._retention.ttl_seconds
        if ttl <= 0:
            return
        cutoff = self._now() - ttl
        for key in [k for k, s in self._artifacts.items() if s.created_at <= cutoff]:
            self._drop(key)

    def _make_room(self, incoming: int, scope: ArtifactScope | None) -> None:
        """Evict from the new artifact's session and trace until it fits their limits, or
        raise `ArtifactLimitError` when it cannot (eviction off, or a limit no eviction can
        meet). Every impossible case is found before anything is evicted."""
        limits = self._retention
        owner = owner_of(scope)
        trace = scope.trace_id if scope is not None else None
        groups: list[tuple[str, Callable[[_Stored], bool], int, int, str, str]] = [
            (
                "session",
                lambda s: owner_of(s.ref.scope) == owner,
                limits.max_artifacts_per_session,
                limits.max_session_bytes,
                "max_artifacts_per_session",
                "max_session_bytes",
            )
        ]
        if trace is not None:
            groups.append(
                (
                    "trace",
                    lambda s: s.ref.scope is not None and s.ref.scope.trace_id == trace,
                    limits.max_artifacts_per_trace,
                    limits.max_trace_bytes,
                    "max_artifacts_per_trace",
                    "max_trace_bytes",
                )
            )
        for group, _, max_count, max_bytes, count_field, bytes_field in groups:
            if max_count < 1:
                raise ArtifactLimitError(
                    f"{count_field}={max_count} leaves no room for any artifact; "
                    f"{_raise_it(count_field)}"
                )
            if incoming > max_bytes:
                raise ArtifactLimitError(
                    f"artifact of {incoming} bytes is over {bytes_field}={max_bytes} for one "
                    f"{group} on its own; {_raise_it(bytes_field)}"
                )
        for group, member, max_count, max_bytes, count_field, bytes_field in groups:
            self._fit(group, member, incoming, max_count, max_bytes, count_field, bytes_field)

    def _fit(
        self,
        group: str,
        member: Callable[[_Stored], bool],
        incoming: int,
        max_count: int,
        max_bytes: int,
        count_field: str,
        bytes_field: str,
    ) -> None:
        strategy = self._retention.cleanup_strategy
        members = [(k, s) for k, s in self._artifacts.items() if member(s)]
        if strategy == "fifo":
            members.sort(key=lambda item: item[1].order)
        count = len(members)
        size = sum(len(s.data) for _, s in members)
        if count + 1 <= max_count and size + incoming <= max_bytes:
            return
        if strategy == "none":
            which = count_field if count + 1 > max_count else bytes_field
            raise ArtifactLimitError(
                f"this {group} already holds {count} artifacts ({size} bytes): one more of "
                f"{incoming} bytes passes {which}, and cleanup_strategy='none' evicts nothing; "
                f"delete artifacts, {_raise_it(which)}, or use cleanup_strategy='lru'"
            )
        for key, stored in members:
            if count + 1 <= max_count and size + incoming <= max_bytes:
                break
            self._drop(key)
            count -= 1
            size -= len(stored.data)


def _raise_it(field: str) -> str:
    return f"raise it with ArtifactRetentionConfig({field}=...)"
