"""`postgresql://user@host:port/db`: a state store on PostgreSQL (asyncpg).

Tables live in one schema (`schema=`, default `penguiflow`), created on first use; the
`schema_version` table drives migrations, applied in one transaction under an advisory lock
so several processes starting together migrate once. The connection pool opens on first use;
close it with `await store.aclose()` or `async with store:`, after which every call raises
`StoreClosedError`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from penguiflow.errors import ConfigurationError
from penguiflow.resources import AsyncResource, redact_url
from penguiflow.state import (
    AuditRecord,
    RemoteBinding,
    SchemaVersionError,
    SessionLogs,
    StoreClosedError,
    StoredEvent,
    check_audit_query,
    check_binding_query,
    event_fingerprint,
    task_id_of,
)
from penguiflow.state.exact_json import dumps_exact

from ._nul import escape_nul, needs_unescape, unescape_nul

__all__ = ["SCHEMA_VERSION", "PostgresStateStore"]

SCHEMA_VERSION = 2
_MIGRATION_LOCK = 0x70656E67  # advisory lock id for migrations

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS {s}.events (
        id BIGSERIAL PRIMARY KEY,
        fingerprint TEXT NOT NULL UNIQUE,
        trace_id TEXT,
        ts DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        node_name TEXT,
        node_id TEXT,
        payload JSONB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_by_trace ON {s}.events (trace_id, ts, id);
    CREATE TABLE IF NOT EXISTS {s}.bindings (
        trace_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        context_id TEXT,
        record JSONB NOT NULL,
        updated BIGSERIAL,
        PRIMARY KEY (trace_id, task_id)
    );
    CREATE TABLE IF NOT EXISTS {s}.memory_state (key TEXT PRIMARY KEY, state JSONB NOT NULL);
    CREATE TABLE IF NOT EXISTS {s}.planner_state (token TEXT PRIMARY KEY, payload JSONB NOT NULL);
    CREATE TABLE IF NOT EXISTS {s}.tasks (
        session_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        position BIGSERIAL,
        payload JSONB NOT NULL,
        PRIMARY KEY (session_id, task_id)
    );
    CREATE TABLE IF NOT EXISTS {s}.logs (
        id BIGSERIAL PRIMARY KEY,
        log TEXT NOT NULL,
        scope TEXT NOT NULL,
        entry_key TEXT,
        payload JSONB NOT NULL,
        UNIQUE (log, scope, entry_key)
    );
    CREATE TABLE IF NOT EXISTS {s}.trajectories (trace_id TEXT PRIMARY KEY, payload JSONB NOT NULL);
    """,
    2: """
    CREATE TABLE IF NOT EXISTS {s}.audit (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ts DOUBLE PRECISION NOT NULL,
        tenant TEXT,
        session_id TEXT,
        record JSONB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS audit_by_tenant ON {s}.audit (tenant, ts, seq);
    CREATE INDEX IF NOT EXISTS audit_by_session ON {s}.audit (tenant, session_id, ts, seq);
    """,
}


_STORE = "the postgresql state store"
#: how a table's rows are named when a value cannot be saved
_ROW_NAMES = {"memory_state": "memory_state", "planner_state": "planner_state"}


def _dumps(value: Any) -> str:
    """An event payload as JSON: events are a log of what happened, not state to resume
    from, so a value JSON cannot hold is kept as its text rather than losing the event.
    U+0000, which `jsonb` refuses, is escaped (`_nul`)."""
    text = json.dumps(value, default=str)
    return json.dumps(escape_nul(json.loads(text))) if _may_hold_nul(text) else text


def _dumps_state(value: Any, what: str) -> str:
    """State that is loaded back (bindings, planner state, memory, tasks, logs,
    trajectories) as JSON, refusing what would not load back as saved (a bytes, set or
    datetime value, a tuple, a non-string key) with an error naming where it is. U+0000,
    which `jsonb` refuses, is escaped (`_nul`)."""
    text = dumps_exact(value, what=what, store=_STORE)
    if _may_hold_nul(text):
        text = dumps_exact(escape_nul(value), what=what, store=_STORE)
    return text


def _may_hold_nul(text: str) -> bool:
    # json.dumps writes U+0000 as an escape; the mark (U+E000) may be raw or escaped.
    return "\\u0000" in text or needs_unescape(text)


def _loads(raw: str) -> Any:
    """JSON read back from a `jsonb` column, its escaped strings restored."""
    value = json.loads(raw)
    return unescape_nul(value) if needs_unescape(raw) else value


class PostgresStateStore(SessionLogs, AsyncResource):
    """Events, bindings, memory, planner tokens, tasks, logs and trajectories in PostgreSQL."""

    def __init__(self, url: str, *, schema: str = "penguiflow", **pool_options: Any) -> None:
        scheme, sep, rest = url.partition("://")
        # Schemes are case-insensitive (`POSTGRESQL://` is routed here too): accept any case.
        if not sep or scheme.lower() not in ("postgresql", "postgres"):
            raise ConfigurationError(
                f"bad PostgreSQL URL {redact_url(url)!r}: use "
                "postgresql://user:password@host:port/database"
            )
        url = f"{scheme.lower()}://{rest}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ConfigurationError(
                f"schema must be a lowercase SQL identifier (letters, digits, _); got {schema!r}"
            )
        self.url = url
        self.schema = schema
        self._pool_options = pool_options
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStateStore({redact_url(self.url)!r}, schema={self.schema!r})"

    async def _db(self) -> Any:
        """The pool, opened (and the schema migrated) on first use; every call goes here."""
        if self._closed:
            raise StoreClosedError(self)
        if self._pool is None:
            async with self._opening:
                if self._closed:  # closed while this call waited for another to open
                    raise StoreClosedError(self)
                if self._pool is None:
                    import asyncpg  # imported when chosen, never at discovery

                    pool = await asyncpg.create_pool(self.url, **self._pool_options)
                    try:
                        await self._migrate(pool)
                    except BaseException:
                        await pool.close()  # a refused schema must not leak connections
                        raise
                    if self._closed:  # aclose() ran while we were opening: do not keep it
                        await pool.close()
                        raise StoreClosedError(self)
                    self._pool = pool
        return self._pool

    async def _migrate(self, pool: Any) -> None:
        s = self.schema
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.schema_version (version INT NOT NULL)"
            )
            version = await conn.fetchval(f"SELECT max(version) FROM {s}.schema_version") or 0
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"schema {s} is at version {version}, newer than this penguiflow-postgres "
                    f"({SCHEMA_VERSION}); upgrade penguiflow-postgres to use it"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                await conn.execute(_MIGRATIONS[target].format(s=s))
                await conn.execute(f"INSERT INTO {s}.schema_version VALUES ($1)", target)

    async def aclose(self) -> None:
        """Close the pool (idempotent); later calls raise `StoreClosedError`."""
        if self._closed:
            return
        self._closed = True
        # Wait for a first use that is opening the pool: it sees `_closed` and closes its pool
        # itself, so no connection outlives this call.
        async with self._opening:
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def close(self) -> None:
        """The same as `aclose()`; kept for code written before `aclose()` existed."""
        await self.aclose()

    # -- StateStore ----------------------------------------------------------------------------

    async def save_event(self, event: StoredEvent) -> None:
        db = await self._db()
        await db.execute(
            f"INSERT INTO {self.schema}.events (fingerprint, trace_id, ts, kind, node_name, "
            "node_id, payload) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) "
            "ON CONFLICT (fingerprint) DO NOTHING",
            event_fingerprint(event), event.trace_id, event.ts, event.kind, event.node_name,
            event.node_id, _dumps(event.payload),
        )  # fmt: skip

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        db = await self._db()
        rows = await db.fetch(
            f"SELECT trace_id, ts, kind, node_name, node_id, payload::text AS payload "
            f"FROM {self.schema}.events WHERE trace_id = $1 ORDER BY ts, id",
            trace_id,
        )
        return [
            StoredEvent(r["trace_id"], r["ts"], r["kind"], r["node_name"], r["node_id"],
                        _loads(r["payload"]))
            for r in rows
        ]  # fmt: skip

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        record = _dumps_state(asdict(binding), "binding")
        db = await self._db()
        await db.execute(
            f"INSERT INTO {self.schema}.bindings (trace_id, task_id, context_id, record) "
            "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (trace_id, task_id) DO UPDATE SET "
            f"context_id = excluded.context_id, record = excluded.record, "
            f"updated = nextval(pg_get_serial_sequence('{self.schema}.bindings', 'updated'))",
            binding.trace_id, binding.task_id, binding.context_id, record,
        )  # fmt: skip

    # -- SupportsConversationBindings ----------------------------------------------------------

    async def find_binding(
        self, *, trace_id: str | None = None, context_id: str | None = None
    ) -> RemoteBinding | None:
        check_binding_query(trace_id, context_id)
        db = await self._db()
        raw = await db.fetchval(
            f"SELECT record::text FROM {self.schema}.bindings WHERE "
            "($1::text IS NULL OR trace_id = $1) AND ($2::text IS NULL OR context_id = $2) "
            "ORDER BY updated DESC LIMIT 1",
            trace_id, context_id,
        )  # fmt: skip
        return RemoteBinding(**_loads(raw)) if raw else None

    async def list_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        db = await self._db()
        rows = await db.fetch(
            f"SELECT record::text AS record FROM {self.schema}.bindings WHERE trace_id = $1 "
            "ORDER BY updated",
            trace_id,
        )
        return [RemoteBinding(**_loads(r["record"])) for r in rows]

    async def mark_binding_terminal(self, *, trace_id: str, task_id: str) -> None:
        db = await self._db()
        await db.execute(
            f"UPDATE {self.schema}.bindings SET record = jsonb_set(record, '{{is_terminal}}', "
            "'true') WHERE trace_id = $1 AND task_id = $2",
            trace_id, task_id,
        )  # fmt: skip

    # -- memory, planner tokens, trajectories --------------------------------------------------

    async def _put(self, table: str, column: str, key: str, payload: dict[str, Any]) -> None:
        text = _dumps_state(payload, _ROW_NAMES.get(table, "trajectory"))
        db = await self._db()
        value = "state" if table == "memory_state" else "payload"
        await db.execute(
            f"INSERT INTO {self.schema}.{table} ({column}, {value}) VALUES ($1, $2::jsonb) "
            f"ON CONFLICT ({column}) DO UPDATE SET {value} = excluded.{value}",
            key, text,
        )  # fmt: skip

    async def _get(self, table: str, column: str, key: str) -> dict[str, Any] | None:
        db = await self._db()
        value = "state" if table == "memory_state" else "payload"
        raw = await db.fetchval(
            f"SELECT {value}::text FROM {self.schema}.{table} WHERE {column} = $1", key
        )
        return _loads(raw) if raw is not None else None

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        await self._put("memory_state", "key", key, state)

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        return await self._get("memory_state", "key", key)

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        await self._put("planner_state", "token", token, payload)

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        return await self._get("planner_state", "token", token)

    async def consume_planner_state(self, token: str) -> dict[str, Any] | None:
        db = await self._db()
        raw = await db.fetchval(  # one statement: two consumers cannot both get it
            f"DELETE FROM {self.schema}.planner_state WHERE token = $1 RETURNING payload::text",
            token,
        )
        return _loads(raw) if raw is not None else None

    async def save_trajectory(self, trace_id: str, trajectory: dict[str, Any]) -> None:
        await self._put("trajectories", "trace_id", trace_id, trajectory)

    async def get_trajectory(self, trace_id: str) -> dict[str, Any] | None:
        return await self._get("trajectories", "trace_id", trace_id)

    # -- tasks and session logs ----------------------------------------------------------------

    async def save_task(self, session_id: str, task: dict[str, Any]) -> None:
        task_id = task_id_of(task)
        text = _dumps_state(task, "task")
        db = await self._db()
        await db.execute(
            f"INSERT INTO {self.schema}.tasks (session_id, task_id, payload) "
            "VALUES ($1, $2, $3::jsonb) ON CONFLICT (session_id, task_id) "
            "DO UPDATE SET payload = excluded.payload",
            session_id, task_id, text,
        )  # fmt: skip

    async def list_tasks(self, session_id: str) -> Sequence[dict[str, Any]]:
        db = await self._db()
        rows = await db.fetch(
            f"SELECT payload::text AS payload FROM {self.schema}.tasks WHERE session_id = $1 "
            "ORDER BY position",
            session_id,
        )
        return [_loads(r["payload"]) for r in rows]

    async def _append_log(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        key = entry.get(key_field)
        what = {"task_updates": "task_update", "steering": "steering_event"}.get(log, log)
        text = _dumps_state(entry, what)
        db = await self._db()
        entry_id = await db.fetchval(
            f"INSERT INTO {self.schema}.logs (log, scope, entry_key, payload) "
            "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (log, scope, entry_key) DO NOTHING "
            "RETURNING id",
            log, scope, None if key is None else str(key), text,
        )  # fmt: skip
        if entry_id is None:
            entry_id = await db.fetchval(
                f"SELECT id FROM {self.schema}.logs WHERE log = $1 AND scope = $2 "
                "AND entry_key = $3",
                log, scope, str(key),
            )  # fmt: skip
        return str(entry_id)

    async def _read_log(self, log: str, scope: str, after: int) -> list[dict[str, Any]]:
        db = await self._db()
        rows = await db.fetch(
            f"SELECT id, payload::text AS payload FROM {self.schema}.logs "
            "WHERE log = $1 AND scope = $2 AND id > $3 ORDER BY id",
            log, scope, after,
        )  # fmt: skip
        return [{**_loads(r["payload"]), "id": str(r["id"])} for r in rows]

    # -- SupportsAudit -------------------------------------------------------------------------

    async def save_audit(self, record: AuditRecord) -> None:
        text = _dumps_state(record.to_dict(), "audit_record")
        # TEXT columns refuse U+0000 too: the lookup columns hold the escaped form.
        tenant, session = escape_nul(record.tenant), escape_nul(record.session_id)
        db = await self._db()
        await db.execute(
            f"INSERT INTO {self.schema}.audit (id, ts, tenant, session_id, record) "
            "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (id) DO NOTHING",
            escape_nul(record.id), record.ts, tenant, session, text,
        )  # fmt: skip

    async def list_audit(
        self,
        tenant: str | None,
        *,
        session_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditRecord]:
        check_audit_query(tenant, since, limit)
        db = await self._db()
        # `IS NOT DISTINCT FROM` matches NULL too: tenant None selects the records without one.
        rows = await db.fetch(
            f"SELECT record::text AS record FROM {self.schema}.audit "
            "WHERE tenant IS NOT DISTINCT FROM $1::text "
            "AND ($2::text IS NULL OR session_id = $2::text) "
            "AND ($3::float8 IS NULL OR ts >= $3::float8) "
            "ORDER BY ts DESC, seq DESC LIMIT $4",
            escape_nul(tenant), escape_nul(session_id),
            None if since is None else float(since), limit,
        )  # fmt: skip
        return [AuditRecord.from_dict(_loads(r["record"])) for r in reversed(rows)]
