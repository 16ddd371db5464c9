"""`StateStoreArtifactStore`: an `ArtifactStore` over a state store's artifact capability
(`penguiflow.state.SupportsArtifacts`: `put_artifact(key, data, mime_type=)` returning a
reference, `get_artifact(reference)`).

That capability keeps bytes only, so the rest an `ArtifactStore` offers (the reference with
its scope, listing, deleting) lives beside it, in the store's memory-state capability when it
has one (durable: another process, or this one after a restart, reads the same artifacts):

- `art2:<id>`: one record per artifact (its `ArtifactRef`, the store's reference, when it was
  stored, whether it was deleted);
- `artidx2:<tenant>:<user>:<session>`: the ids stored for that owner, for `list`;
- `artdir2`: the owners that have an index, for a `list` that leaves an owner field open.

Each part is percent-escaped and `*` stands for None (an escaped part never holds `*`), so no
two owners share an index. None of these strings can be a memory key (`v2:...`, or one with
`/`s) or a session-KV key (`kv2:...`).

Without memory state the records stay in this process only, which is said once in a warning.
Deleting marks the record deleted: the capability has no way to delete bytes, so they stay in
the store until its own retention removes them, unreachable through this adapter.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from penguiflow.errors import InvalidTypeError

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
from ._key_locks import key_lock

__all__ = ["StateStoreArtifactStore"]

logger = logging.getLogger("penguiflow.planner")

_DIRECTORY = "artdir2"

_Owner = tuple[str | None, str | None, str | None]


def _part(value: str | None) -> str:
    return "*" if value is None else quote(value, safe="")


def _record_key(artifact_id: str) -> str:
    return "art2:" + quote(artifact_id, safe="")


def _index_key(owner: _Owner) -> str:
    return "artidx2:" + ":".join(_part(p) for p in owner)


class _LocalRecords:
    """Records for a store without memory state: this process only."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        self._records[key] = dict(state)

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        state = self._records.get(key)
        return dict(state) if state is not None else None


class StateStoreArtifactStore(TextAsBytes):
    """An `ArtifactStore` over `state_store`'s `put_artifact`/`get_artifact`.

    `retention`, when given, is enforced as far as the capability allows: the per-artifact
    size limit, and `ttl_seconds` (an older artifact reads as gone); without it the store's
    own policy is the only one. `time_source` gives wall seconds (`time.time`)."""

    def __init__(
        self,
        state_store: Any,
        *,
        retention: ArtifactRetentionConfig | None = None,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        for method in ("put_artifact", "get_artifact"):
            if not callable(getattr(state_store, method, None)):
                raise InvalidTypeError(
                    f"{type(state_store).__name__} has no {method}(); StateStoreArtifactStore "
                    "needs a state store with the artifacts capability (SupportsArtifacts), or "
                    "use InMemoryArtifactStore"
                )
        self._store = state_store
        self._retention = retention
        self._now = time_source
        self._records: Any = state_store
        if not (
            callable(getattr(state_store, "save_memory_state", None))
            and callable(getattr(state_store, "load_memory_state", None))
        ):
            logger.warning(
                "%s keeps artifact bytes but has no memory state (save_memory_state/"
                "load_memory_state): artifact references, listing and deletion last only as "
                "long as this process",
                type(state_store).__name__,
            )
            self._records = _LocalRecords()

    @property
    def state_store(self) -> Any:
        return self._store

    # -- records ---------------------------------------------------------------------------------

    async def _load(self, key: str) -> dict[str, Any] | None:
        state = await self._records.load_memory_state(key)
        return dict(state) if isinstance(state, dict) else None

    def _live(self, record: dict[str, Any] | None) -> bool:
        if record is None or record.get("deleted"):
            return False
        ttl = self._retention.ttl_seconds if self._retention is not None else 0
        return ttl <= 0 or float(record.get("created_at", 0.0)) + ttl > self._now()

    async def _live_record(self, artifact_id: str) -> dict[str, Any] | None:
        record = await self._load(_record_key(artifact_id))
        return record if self._live(record) else None

    async def _add_to_index(self, owner: _Owner, aid: str) -> None:
        key = _index_key(owner)
        async with key_lock(self._store, key):
            index = await self._load(key)
            ids: list[str] = list(index["ids"]) if index is not None else []
            if aid not in ids:
                ids.append(aid)
                await self._records.save_memory_state(key, {"ids": ids})
        if index is None:
            async with key_lock(self._store, _DIRECTORY):
                directory = await self._load(_DIRECTORY)
                owners: list[list[str | None]] = (
                    list(directory["owners"]) if directory is not None else []
                )
                if list(owner) not in owners:
                    owners.append(list(owner))
                    await self._records.save_memory_state(_DIRECTORY, {"owners": owners})

    async def _remove_from_index(self, owner: _Owner, aid: str) -> None:
        key = _index_key(owner)
        async with key_lock(self._store, key):
            index = await self._load(key)
            if index is not None and aid in index["ids"]:
                ids = [i for i in index["ids"] if i != aid]
                await self._records.save_memory_state(key, {"ids": ids})

    # -- ArtifactStore ---------------------------------------------------------------------------

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
        limit = self._retention.max_artifact_bytes if self._retention is not None else None
        if limit is not None and len(data) > limit:
            raise ArtifactLimitError(
                f"artifact of {len(data)} bytes is over max_artifact_bytes={limit}; store "
                "less, or raise it with ArtifactRetentionConfig(max_artifact_bytes=...)"
            )
        sha256 = hashlib.sha256(data).hexdigest()
        owner = owner_of(scope)
        for digits in ID_DIGITS:
            aid = artifact_id(data, namespace=namespace, scope=scope, digits=digits)
            key = _record_key(aid)
            async with key_lock(self._store, key):
                record = await self._load(key)
                if self._live(record):
                    assert record is not None
                    existing = ArtifactRef.model_validate(record["ref"])
                    if existing.sha256 == sha256 and owner_of(existing.scope) == owner:
                        return existing
                    continue  # the short id holds other content: try a longer one
                ref = ArtifactRef(
                    id=aid,
                    mime_type=mime_type,
                    size_bytes=len(data),
                    filename=filename,
                    sha256=sha256,
                    scope=scope,
                    namespace=namespace,
                    source=dict(meta or {}),
                )
                stored_as = await self._store.put_artifact(aid, data, mime_type=mime_type)
                await self._records.save_memory_state(
                    key,
                    {
                        "schema_version": 1,
                        "ref": ref.model_dump(mode="json"),
                        "store_ref": stored_as,
                        "created_at": self._now(),
                        "deleted": False,
                    },
                )
            await self._add_to_index(owner, aid)
            return ref
        raise ArtifactLimitError(  # pragma: no cover - a full SHA-256 collision
            f"artifact id for {len(data)} bytes collides at every length"
        )

    async def get(self, artifact_id: str) -> bytes | None:
        record = await self._live_record(artifact_id)
        if record is None:
            return None
        data = await self._store.get_artifact(str(record["store_ref"]))
        if data is None:
            return None
        expected = record["ref"].get("sha256")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            # The store returned other bytes than were stored: never hand them out as this
            # artifact.
            logger.warning(
                "artifact %s: the state store returned content whose digest differs from "
                "the one stored; treating the artifact as missing",
                artifact_id,
            )
            return None
        return bytes(data)

    async def get_ref(self, artifact_id: str) -> ArtifactRef | None:
        record = await self._live_record(artifact_id)
        return ArtifactRef.model_validate(record["ref"]) if record is not None else None

    async def exists(self, artifact_id: str) -> bool:
        return await self._live_record(artifact_id) is not None

    async def delete(self, artifact_id: str) -> bool:
        key = _record_key(artifact_id)
        async with key_lock(self._store, key):
            record = await self._load(key)
            if not self._live(record):
                return False
            assert record is not None
            await self._records.save_memory_state(key, {**record, "deleted": True})
        ref = ArtifactRef.model_validate(record["ref"])
        await self._remove_from_index(owner_of(ref.scope), artifact_id)
        return True

    async def list(self, *, scope: ArtifactScope | None = None) -> list[ArtifactRef]:
        wanted = owner_of(scope)
        if None not in wanted:
            owners = [wanted]
        else:
            directory = await self._load(_DIRECTORY)
            owners = [
                (o[0], o[1], o[2])
                for o in (directory["owners"] if directory is not None else [])
                if all(w is None or w == have for w, have in zip(wanted, o, strict=True))
            ]
        found: list[ArtifactRef] = []
        for owner in owners:
            index = await self._load(_index_key(owner))
            for aid in index["ids"] if index is not None else []:
                record = await self._live_record(aid)
                if record is None:
                    continue
                ref = ArtifactRef.model_validate(record["ref"])
                if scope_matches(ref.scope, scope):
                    found.append(ref)
        return found
