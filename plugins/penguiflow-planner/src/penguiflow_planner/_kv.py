"""`ctx.kv`: durable key-value storage for tools, per session (PenguiFlow 3.11's `SessionKV`).

Values live in the state store's memory-state capability (`save_memory_state` /
`load_memory_state`, `penguiflow.state.SupportsMemoryState`), one record per key:

    kv2:<tenant>:<user>:<session>:session:<namespace>:<key>
    kv2:<tenant>:<user>:<session>:task:<task>:<namespace>:<key>

every part percent-escaped as memory's keys are (`MemoryKey.as_string()`), so the string
names exactly one (owner, scope, namespace, key): no session can reach another's values, and
no KV record can land on a memory snapshot (those start `v2:` or hold `/`s).

The owner is the run's `memory_key` when it has one, else `tenant_id`, `user_id` and
`session_id` from `tool_context`; without all three the KV refuses to work rather than share
a record between sessions. `scope="task"` records also name a task (`tool_context["task_id"]`,
else the run's trace) and expire `task_ttl_s` (an hour) after their last write.

As in PenguiFlow, values under secret-looking keys (`token`, `password`, `api_key`, ...,
at any depth) are replaced by `<redacted>` before anything is stored or published: the KV is
not a place for credentials, and its events go to every event sink. Values larger than
`max_inline_bytes` as JSON are kept in the artifact store when there is a real one.
Every write holds the key's process-wide lock (`_key_locks`), so concurrent `patch`es in one
process never lose an update.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from penguiflow.errors import PenguiFlowError, describe_exception
from penguiflow.memory import MemoryKey
from penguiflow.state import missing_capabilities

from ._artifact_models import ArtifactScope, ArtifactStore
from ._artifact_stores import NoOpArtifactStore
from ._events import EmitFn
from ._key_locks import key_lock

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "KVScope",
    "PlannerSessionKV",
    "SessionKVConfig",
    "SessionKVError",
    "SessionKVValueError",
    "identity_part",
    "resolve_owner",
]

logger = logging.getLogger("penguiflow.planner")

KVScope = Literal["session", "task"]
"""`session`: kept for the session, no expiry. `task`: one task's scratch space, expiring."""

REDACTED = "<redacted>"

#: Keys whose values are never stored (compared lower-cased, with `-` read as `_`).
DEFAULT_REDACT_KEYS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "authorization",
        "api_key",
        "apikey",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "private_key",
    }
)


class SessionKVError(PenguiFlowError, RuntimeError):
    """`ctx.kv` cannot work here: no state store with memory state, or no session to keep
    values for. The message names what to configure. (A `RuntimeError`, as PenguiFlow's.)"""


class SessionKVValueError(SessionKVError, ValueError):
    """A KV call with an unusable argument: an empty key, an unknown scope, a value that is
    not JSON, or a `patch` of a value that is not a mapping."""


@dataclass(frozen=True, slots=True)
class SessionKVConfig:
    """`max_inline_bytes`: larger values (as JSON) go to the artifact store when there is a
    real one. `redact_keys`: keys whose values are replaced by `<redacted>`. `task_ttl_s`:
    how long a `scope="task"` record lives after its last write (PenguiFlow: an hour)."""

    max_inline_bytes: int = 8192
    redact_keys: frozenset[str] = field(default=DEFAULT_REDACT_KEYS)
    task_ttl_s: float = 3600.0


def identity_part(value: Any) -> str | None:
    """A tenant, user, session, task or trace id taken from `tool_context`: a non-blank
    string (stripped) or an integer; anything else counts as absent."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def resolve_owner(
    tool_context: Mapping[str, Any], memory_key: MemoryKey | None
) -> tuple[tuple[str, str, str] | None, list[str]]:
    """Whose session this is: (tenant, user, session) from `memory_key`, else from
    `tool_context`; with the `tool_context` keys that are missing when there is none."""
    if memory_key is not None:
        return (memory_key.tenant_id, memory_key.user_id, memory_key.session_id), []
    names = ("tenant_id", "user_id", "session_id")
    parts = [identity_part(tool_context.get(name)) for name in names]
    missing = [name for name, part in zip(names, parts, strict=True) if part is None]
    if missing:
        return None, missing
    tenant, user, session = (p for p in parts if p is not None)
    return (tenant, user, session), []


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _escape(part: str) -> str:
    return quote(part, safe="")


def _redact(value: Any, keys: frozenset[str]) -> Any:
    value = _plain(value)
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED
            if str(k).strip().lower().replace("-", "_") in keys
            else _redact(v, keys)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(v, keys) for v in value]
    return value


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a Pydantic model: its JSON form
        return dump(mode="json")
    return value


class PlannerSessionKV:
    """The `SessionKV` a tool gets as `ctx.kv` (see the module docstring)."""

    def __init__(
        self,
        *,
        state_store: Any | None,
        artifacts: ArtifactStore | None,
        tool_context: Mapping[str, Any],
        memory_key: MemoryKey | None,
        trace_id: str | None,
        emit: EmitFn | None,
        config: SessionKVConfig | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._store = state_store
        self._artifacts = artifacts
        self._tool_context = tool_context
        self._memory_key = memory_key
        self._trace_id = identity_part(tool_context.get("trace_id")) or trace_id
        self._emit_fn = emit
        self._config = config or SessionKVConfig()
        self._clock = clock

    def __repr__(self) -> str:
        return f"PlannerSessionKV(tool={self._tool_context.get('_current_tool_name')!r})"

    # -- SessionKV -----------------------------------------------------------------------------

    async def get(
        self, key: str, *, scope: KVScope = "session", namespace: str | None = None
    ) -> Any | None:
        """The value stored under `key`, or None (never set, deleted, or expired)."""
        storage = self._storage_key(key, scope, namespace)
        state = await self._load(storage)
        return await self._value_of(state) if self._live(state) else None

    async def set(
        self,
        key: str,
        value: Any,
        *,
        scope: KVScope = "session",
        namespace: str | None = None,
        emit_update: bool = True,
    ) -> Any:
        """Store `value` (JSON; secret-looking keys redacted) and return it as stored."""
        storage = self._storage_key(key, scope, namespace)
        async with key_lock(self._store, storage):
            previous = await self._load(storage)
            previous = previous if self._live(previous) else None
            state = await self._build(value, scope, key)
            await self._save(storage, state)
            if emit_update:
                await self._publish("kv_set", key, scope, namespace, storage, previous, state)
        return await self._value_of(state)

    async def patch(
        self,
        key: str,
        patch: Mapping[str, Any],
        *,
        scope: KVScope = "session",
        namespace: str | None = None,
        emit_update: bool = True,
    ) -> Any:
        """Merge `patch` into the mapping stored under `key` (top-level keys replaced; an
        absent key starts from `{}`) and return the result as stored."""
        if not isinstance(patch, Mapping):
            raise SessionKVValueError(
                f"kv.patch({key!r}, ...) takes a mapping of keys to set, got "
                f"{type(patch).__name__}; use kv.set() to replace the whole value"
            )
        storage = self._storage_key(key, scope, namespace)
        async with key_lock(self._store, storage):
            previous = await self._load(storage)
            previous = previous if self._live(previous) else None
            base = await self._value_of(previous) if previous is not None else None
            if base is None:
                base = {}
            if not isinstance(base, Mapping):
                raise SessionKVValueError(
                    f"kv.patch({key!r}, ...) needs a mapping, but {key!r} holds a "
                    f"{type(base).__name__}; use kv.set() to replace it"
                )
            state = await self._build({**base, **patch}, scope, key)
            await self._save(storage, state)
            if emit_update:
                await self._publish("kv_patch", key, scope, namespace, storage, previous, state)
        return await self._value_of(state)

    async def get_or_init(
        self,
        key: str,
        default: Any,
        *,
        scope: KVScope = "session",
        namespace: str | None = None,
        emit_update: bool = True,
    ) -> Any:
        """The value under `key`; when there is none, store `default` and return it."""
        storage = self._storage_key(key, scope, namespace)
        async with key_lock(self._store, storage):
            previous = await self._load(storage)
            if self._live(previous):
                return await self._value_of(previous)
            state = await self._build(default, scope, key)
            await self._save(storage, state)
            if emit_update:
                await self._publish("kv_init", key, scope, namespace, storage, None, state)
        return await self._value_of(state)

    async def delete(
        self,
        key: str,
        *,
        scope: KVScope = "session",
        namespace: str | None = None,
        emit_update: bool = True,
    ) -> bool:
        """Delete the value under `key`; whether there was one."""
        storage = self._storage_key(key, scope, namespace)
        async with key_lock(self._store, storage):
            previous = await self._load(storage)
            if not self._live(previous):
                return False
            # Memory state has no delete: a tombstone replaces the record.
            state = self._envelope(scope, deleted=True, value=None)
            await self._save(storage, state)
            if emit_update:
                await self._publish("kv_delete", key, scope, namespace, storage, previous, state)
        return True

    # -- keys ----------------------------------------------------------------------------------

    def _namespace(self, namespace: str | None) -> str:
        if namespace is not None and not isinstance(namespace, str):
            raise SessionKVValueError(
                f"kv namespace must be a string, got {type(namespace).__name__}"
            )
        if namespace and namespace.strip():
            return namespace.strip()
        tool = identity_part(self._tool_context.get("_current_tool_name"))
        return f"tool:{tool}" if tool else "unknown"

    def _task_id(self) -> str:
        task = identity_part(self._tool_context.get("task_id")) or self._trace_id
        if task is None:
            raise SessionKVError(
                "kv scope='task' needs a task: put task_id in tool_context, or run the "
                "planner with a trace id"
            )
        return task

    def _storage_key(self, key: str, scope: KVScope, namespace: str | None) -> str:
        if not isinstance(key, str) or not key.strip():
            raise SessionKVValueError(f"kv key must be a non-empty string, got {key!r}")
        if scope not in ("session", "task"):
            raise SessionKVValueError(f"kv scope must be 'session' or 'task', got {scope!r}")
        self._require_store()
        owner, missing = resolve_owner(self._tool_context, self._memory_key)
        if owner is None:
            raise SessionKVError(
                "ctx.kv keeps values per session and this run names none: pass "
                "memory_key=MemoryKey(tenant_id=..., user_id=..., session_id=...) to run() or "
                f"resume(), or put {', '.join(missing)} in tool_context"
            )
        parts = [*owner, "session"] if scope == "session" else [*owner, "task", self._task_id()]
        parts += [self._namespace(namespace), key.strip()]
        return "kv2:" + ":".join(_escape(p) for p in parts)

    def _require_store(self) -> None:
        if self._store is None:
            raise SessionKVError(
                "ctx.kv needs a state store: pass state_store= to ReactPlanner (e.g. "
                "InMemoryStateStore(), or resolve_driver('state_store', 'sqlite:///kv.db'))"
            )
        missing = missing_capabilities(self._store, ["save_memory_state", "load_memory_state"])
        if missing:
            raise SessionKVError(
                f"ctx.kv needs a state store with memory state, and "
                f"{type(self._store).__name__} has no {' or '.join(missing)}; use one that "
                "implements SupportsMemoryState (InMemoryStateStore, sqlite://, redis://, ...)"
            )

    # -- records -------------------------------------------------------------------------------

    async def _load(self, storage: str) -> dict[str, Any] | None:
        assert self._store is not None
        state = await self._store.load_memory_state(storage)
        return dict(state) if isinstance(state, Mapping) else None

    async def _save(self, storage: str, state: dict[str, Any]) -> None:
        assert self._store is not None
        await self._store.save_memory_state(storage, state)

    def _live(self, state: Mapping[str, Any] | None) -> bool:
        if state is None or state.get("deleted"):
            return False
        expires_at = state.get("expires_at")
        if isinstance(expires_at, str) and expires_at:
            try:
                moment = datetime.fromisoformat(expires_at)
            except ValueError:
                return True
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return self._clock() < moment
        return True

    def _envelope(self, scope: KVScope, *, deleted: bool, value: Any) -> dict[str, Any]:
        now = self._clock()
        state: dict[str, Any] = {
            "schema_version": 1,
            "etag": uuid.uuid4().hex,
            "updated_at": now.isoformat(),
            "deleted": deleted,
            "value": value,
            "redaction": {"applied": True, "rules": sorted(self._config.redact_keys)},
        }
        if scope == "task":
            expires = now + timedelta(seconds=self._config.task_ttl_s)
            state["expires_at"] = expires.isoformat()
        return state

    async def _build(self, value: Any, scope: KVScope, key: str) -> dict[str, Any]:
        redacted = _redact(value, self._config.redact_keys)
        try:
            text = json.dumps(
                redacted, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
            )
        except (TypeError, ValueError) as exc:
            raise SessionKVValueError(
                f"value for kv key {key!r} is not JSON ({describe_exception(exc)}); store "
                "dicts, lists, strings, numbers, booleans, None or a Pydantic model"
            ) from exc
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        body: dict[str, Any] = {
            "inline": None,
            "hash": digest,
            "artifact_ref": None,
            "mime_type": "application/json",
        }
        if len(text.encode("utf-8")) > self._config.max_inline_bytes and self._offloads():
            assert self._artifacts is not None
            owner, _ = resolve_owner(self._tool_context, self._memory_key)
            tenant, user, session = owner if owner is not None else (None, None, None)
            ref = await self._artifacts.put_text(
                text,
                mime_type="application/json",
                filename="session_kv.json",
                namespace="session_kv",
                scope=ArtifactScope(
                    tenant_id=tenant, user_id=user, session_id=session, trace_id=self._trace_id
                ),
                meta={"kv_hash": digest},
            )
            body["artifact_ref"] = ref.model_dump(mode="json")
        else:
            # What a durable store gives back: tuples as lists, keys as strings.
            body["inline"] = json.loads(text)
        return self._envelope(scope, deleted=False, value=body)

    def _offloads(self) -> bool:
        artifacts = self._artifacts
        if artifacts is None:
            return False
        inner = getattr(artifacts, "inner", artifacts)  # the planner's event-emitting proxy
        return not isinstance(inner, NoOpArtifactStore)

    async def _value_of(self, state: Mapping[str, Any] | None) -> Any:
        body = state.get("value") if state is not None else None
        if not isinstance(body, Mapping):
            return None
        if body.get("inline") is not None or body.get("artifact_ref") is None:
            return body.get("inline")
        artifact = (
            body["artifact_ref"].get("id") if isinstance(body["artifact_ref"], Mapping) else None
        )
        data = await self._artifacts.get(artifact) if self._artifacts and artifact else None
        if data is None or hashlib.sha256(data).hexdigest() != body.get("hash"):
            logger.warning(
                "kv value kept as artifact %s is gone or changed from what was stored; "
                "reading it as missing",
                artifact,
            )
            return None
        return json.loads(data.decode("utf-8"))

    # -- events --------------------------------------------------------------------------------

    async def _publish(
        self,
        kind: str,
        key: str,
        scope: KVScope,
        namespace: str | None,
        storage: str,
        previous: Mapping[str, Any] | None,
        state: Mapping[str, Any],
    ) -> None:
        if self._emit_fn is None:
            return
        owner, _ = resolve_owner(self._tool_context, self._memory_key)
        tenant, user, session = owner if owner is not None else (None, None, None)
        context = self._tool_context
        tool = context.get("_current_tool_name")
        call = context.get("_current_tool_call_id")
        version = context.get("context_version")
        digest = context.get("context_hash")
        extra = {
            "kind": kind,
            "scope": scope,
            "namespace": self._namespace(namespace),
            "key": key,
            "composite_key": storage,
            "prev": _summary(previous),
            "next": _summary(state),
            "prev_etag_seen": previous.get("etag") if previous is not None else None,
            "next_etag_written": str(state.get("etag") or ""),
            "expires_at": state.get("expires_at"),
            "actor": {
                "tenant_id": tenant,
                "user_id": user,
                "session_id": session,
                "task_id": identity_part(context.get("task_id")),
                "trace_id": self._trace_id,
                "tool_name": tool if isinstance(tool, str) else None,
                "tool_call_id": call if isinstance(call, str) else None,
            },
            "context": {
                "context_version": version if isinstance(version, int) else None,
                "context_hash": digest if isinstance(digest, str) else None,
            },
        }
        await self._emit_fn(kind, extra, node_name=tool if isinstance(tool, str) else None)


def _summary(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What an event says of a record: its value's digest and the value (already redacted)
    or the artifact holding it; None for no record or a tombstone."""
    body = state.get("value") if state is not None else None
    if not isinstance(body, Mapping):
        return None
    summary: dict[str, Any] = {"hash": body.get("hash")}
    if body.get("inline") is not None:
        summary["inline"] = body["inline"]
    if body.get("artifact_ref") is not None:
        summary["artifact_ref"] = body["artifact_ref"]
    return summary
