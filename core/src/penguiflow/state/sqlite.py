"""`sqlite://PATH`: the embedded durable state store (standard library only).

All database work runs on one dedicated thread that owns the connection, so the event loop
never blocks and SQLite sees a single writer. URLs follow the usual convention:
`sqlite:///flows.db` is relative to the working directory, `sqlite:////var/lib/flows.db` is
absolute, and `sqlite:///:memory:` lives as long as the store. The one URL option is
`?timeout=SECONDS` (how long to wait for another process's write lock); anything else in the
URL (a user, password or host, `?mode=ro`, other options) is refused, never ignored.

The database is opened, checked and migrated when the store is built, so a path that cannot
hold a database, a file that is not one, or a schema newer than this penguiflow fails at
`create(state_store=...)` instead of once per event; a refused file is left as it was.
State (planner state, tasks, logs, trajectories, bindings) must load back as saved: values
JSON cannot hold exactly are refused at save time, naming where they are
(`penguiflow.state.exact_json`).
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigurationError, InvalidTypeError, describe_exception
from ..resources import AsyncResource, redact_url
from ._errors import SchemaVersionError, StoreClosedError
from ._logs import SessionLogs
from ._models import AuditRecord, RemoteBinding, StoredEvent
from ._rules import check_audit_query, check_binding_query, event_fingerprint, task_id_of
from .exact_json import dumps_exact

__all__ = ["SCHEMA_VERSION", "SQLiteStateStore"]

T = TypeVar("T")

SCHEMA_VERSION = 3

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL UNIQUE,
        trace_id TEXT,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        node_name TEXT,
        node_id TEXT,
        payload TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_by_trace ON events (trace_id, ts, id);
    CREATE TABLE IF NOT EXISTS bindings (
        trace_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        context_id TEXT,
        record TEXT NOT NULL,
        updated INTEGER NOT NULL,
        PRIMARY KEY (trace_id, task_id)
    );
    CREATE TABLE IF NOT EXISTS memory_state (
        key TEXT PRIMARY KEY,
        state TEXT NOT NULL
    );
    """,
    2: """
    CREATE TABLE IF NOT EXISTS planner_state (
        token TEXT PRIMARY KEY,
        payload TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS tasks (
        session_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (session_id, task_id)
    );
    CREATE TABLE IF NOT EXISTS logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        log TEXT NOT NULL,
        scope TEXT NOT NULL,
        entry_key TEXT,
        payload TEXT NOT NULL,
        UNIQUE (log, scope, entry_key)
    );
    CREATE INDEX IF NOT EXISTS logs_by_scope ON logs (log, scope, id);
    CREATE TABLE IF NOT EXISTS trajectories (
        trace_id TEXT PRIMARY KEY,
        payload TEXT NOT NULL
    );
    """,
    3: """
    CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        ts REAL NOT NULL,
        tenant TEXT,
        session_id TEXT,
        record TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant, ts, seq);
    CREATE INDEX IF NOT EXISTS audit_by_session ON audit (tenant, session_id, ts, seq);
    """,
}


_URL_FORMS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:"
_DEFAULT_TIMEOUT = 30.0
_STORE = "the sqlite state store"


def _parse_url(url: object) -> tuple[str, float | None]:
    """The database path and the `timeout` option of a `sqlite://` URL; refuse the rest."""
    if not isinstance(url, str):
        raise InvalidTypeError(f"the SQLite URL must be a str ({_URL_FORMS}); got {url!r}")
    shown = redact_url(url)  # errors end up in logs: never with a password
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(
            f"bad SQLite URL {shown!r} ({describe_exception(exc)}): use {_URL_FORMS}"
        ) from exc
    if parts.netloc:
        # SQLite opens a local file: a user, password or host cannot be honoured, and
        # `sqlite://flows.db` (two slashes) puts the file name where the host goes.
        raise ConfigurationError(
            f"bad SQLite URL {shown!r}: it names a user, password or host, which "
            f"a local SQLite file cannot use; use {_URL_FORMS} (three slashes, then the path)"
        )
    if parts.scheme != "sqlite" or not parts.path.startswith("/") or parts.path == "/":
        raise ConfigurationError(f"bad SQLite URL {shown!r}: use {_URL_FORMS}")
    if parts.fragment:
        raise ConfigurationError(
            f"bad SQLite URL {shown!r}: it has a fragment (#{parts.fragment}); remove it"
        )
    timeout: float | None = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "timeout" and timeout is None:
            timeout = _check_timeout(value, origin=f"the URL option timeout={value!r}")
        elif name == "timeout":
            raise ConfigurationError(f"the SQLite URL {shown!r} gives timeout more than once")
        elif name == "mode":
            raise ConfigurationError(
                f"the SQLite URL option mode={value!r} is not supported: the store always "
                "opens its file to read and write (it migrates the schema and records "
                "events); remove it, and read a copy of the file for read-only access"
            )
        else:
            raise ConfigurationError(
                f"the SQLite URL option {name!r} is not supported (accepted: timeout, the "
                f"seconds to wait for another process's lock); remove it from {shown!r}"
            )
    return parts.path[1:], timeout


def _check_timeout(value: object, *, origin: str) -> float:
    """`value` as seconds to wait for a lock: a finite number >= 0 (a string from a URL)."""
    number: float | None = None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise ConfigurationError(
            f"{origin} must be a finite number of seconds >= 0 (how long to wait for "
            f"another process's write lock); got {value!r}"
        )
    return number


def _refusal(path: str, url: str, exc: sqlite3.Error) -> ConfigurationError | None:
    """The configuration error an SQLite failure to open `path` means, if it means one."""
    name = getattr(exc, "sqlite_errorname", "")
    reason = describe_exception(exc)
    shown = redact_url(url)
    if name == "SQLITE_CANTOPEN":
        return ConfigurationError(
            f"cannot open the SQLite database {path!r} (from {shown!r}): {reason}; the path must "
            "name a file (existing or new) in a directory this process can write to"
        )
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return ConfigurationError(
            f"{path!r} (from {shown!r}) is not a usable SQLite database: {reason}; point the "
            "URL at a penguiflow database or at a new file (the file was left unchanged)"
        )
    if name == "SQLITE_READONLY":
        return ConfigurationError(
            f"the SQLite database {path!r} (from {shown!r}) is read-only ({reason}); the store "
            "needs to write to it: fix its permissions or choose another path"
        )
    return None


def _open(path: str, url: str, timeout: float) -> sqlite3.Connection:
    """A connection to `path`, checked and migrated to `SCHEMA_VERSION`.

    Closed again when anything fails, so a refused file leaks no connection; and the
    version is checked before anything is written, so a refused file is left unchanged."""
    shown = redact_url(url)
    if path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the directory of the SQLite database {path!r} (from {shown!r}): "
                f"{describe_exception(exc)}; choose a path in a writable directory"
            ) from exc
    try:
        connection = sqlite3.connect(path, timeout=timeout)
    except sqlite3.Error as exc:
        refusal = _refusal(path, url, exc)
        if refusal is None:
            raise
        raise refusal from exc
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{path} has schema version {version}, newer than this penguiflow "
                f"({SCHEMA_VERSION}); upgrade penguiflow to open it (the file was left unchanged)"
            )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with connection:
                connection.executescript(_MIGRATIONS[target])
                connection.execute(f"PRAGMA user_version = {target}")
    except sqlite3.Error as exc:
        connection.close()
        refusal = _refusal(path, url, exc)
        if refusal is None:
            raise
        raise refusal from exc
    except BaseException:
        connection.close()
        raise
    return connection


class SQLiteStateStore(SessionLogs, AsyncResource):
    """Events, remote bindings and memory state in one SQLite file.

    Close it with `await store.aclose()` or `async with store:`; afterwards every call
    raises `StoreClosedError`."""

    def __init__(self, url: str = "sqlite:///:memory:", **options: Any) -> None:
        timeout = options.pop("timeout", None)
        if options:
            raise InvalidTypeError(
                f"sqlite state store got unknown option(s) {sorted(options)}; accepted: ['timeout']"
            )
        self.path, url_timeout = _parse_url(url)
        self.url = url
        if timeout is not None and url_timeout is not None:
            raise ConfigurationError(
                f"timeout is given both in the URL {redact_url(url)!r} and as an option; "
                "give it once"
            )
        if timeout is not None:
            self._timeout = _check_timeout(timeout, origin="the timeout option")
        else:
            self._timeout = url_timeout if url_timeout is not None else _DEFAULT_TIMEOUT
        if self.path != ":memory:":
            # Open (check, migrate) and close once now, on the caller's thread: a database
            # that cannot work fails here, at create(), not silently in every event's save.
            # Nothing stays open, so a store that is never used needs no closing.
            _open(self.path, url, self._timeout).close()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="penguiflow-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    # -- the database thread -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Checked again here: the file may have changed since the store was built.
        if self._connection is None:
            self._connection = _open(self.path, self.url, self._timeout)
        return self._connection

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreClosedError(self)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._connect()))

    # -- StateStore ----------------------------------------------------------------------------

    async def save_event(self, event: StoredEvent) -> None:
        row = (
            event_fingerprint(event),
            event.trace_id,
            event.ts,
            event.kind,
            event.node_name,
            event.node_id,
            # Events are a log of what happened, not state to resume from: a value JSON
            # cannot hold is kept as its text rather than losing the whole event.
            json.dumps(event.payload, default=str),
        )

        def insert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT OR IGNORE INTO events (fingerprint, trace_id, ts, kind, node_name, "
                    "node_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

        await self._call(insert)

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        def select(db: sqlite3.Connection) -> list[StoredEvent]:
            rows = db.execute(
                "SELECT trace_id, ts, kind, node_name, node_id, payload FROM events "
                "WHERE trace_id = ? ORDER BY ts, id",
                (trace_id,),
            ).fetchall()
            return [
                StoredEvent(t, ts, kind, name, node_id, json.loads(payload))
                for t, ts, kind, name, node_id, payload in rows
            ]

        return await self._call(select)

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        record = dumps_exact(asdict(binding), what="binding", store=_STORE)

        def upsert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT INTO bindings (trace_id, task_id, context_id, record, updated) "
                    "VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(updated), 0) + 1 FROM bindings)) "
                    "ON CONFLICT (trace_id, task_id) DO UPDATE SET "
                    "context_id = excluded.context_id, record = excluded.record, "
                    "updated = excluded.updated",
                    (binding.trace_id, binding.task_id, binding.context_id, record),
                )

        await self._call(upsert)

    # -- SupportsConversationBindings ----------------------------------------------------------

    async def find_binding(
        self, *, trace_id: str | None = None, context_id: str | None = None
    ) -> RemoteBinding | None:
        check_binding_query(trace_id, context_id)

        def select(db: sqlite3.Connection) -> RemoteBinding | None:
            row = db.execute(
                "SELECT record FROM bindings WHERE (? IS NULL OR trace_id = ?) AND "
                "(? IS NULL OR context_id = ?) ORDER BY updated DESC LIMIT 1",
                (trace_id, trace_id, context_id, context_id),
            ).fetchone()
            return RemoteBinding(**json.loads(row[0])) if row else None

        return await self._call(select)

    async def list_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        def select(db: sqlite3.Connection) -> list[RemoteBinding]:
            rows = db.execute(
                "SELECT record FROM bindings WHERE trace_id = ? ORDER BY updated", (trace_id,)
            ).fetchall()
            return [RemoteBinding(**json.loads(r[0])) for r in rows]

        return await self._call(select)

    async def mark_binding_terminal(self, *, trace_id: str, task_id: str) -> None:
        def update(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT record FROM bindings WHERE trace_id = ? AND task_id = ?",
                (trace_id, task_id),
            ).fetchone()
            if row is None:
                return
            record = json.loads(row[0])
            record["is_terminal"] = True
            with db:
                db.execute(
                    "UPDATE bindings SET record = ? WHERE trace_id = ? AND task_id = ?",
                    (json.dumps(record), trace_id, task_id),
                )

        await self._call(update)

    # -- SupportsMemoryState -------------------------------------------------------------------

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        text = dumps_exact(state, what="memory_state", store=_STORE)

        def upsert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT INTO memory_state (key, state) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                    (key, text),
                )

        await self._call(upsert)

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        def select(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute("SELECT state FROM memory_state WHERE key = ?", (key,)).fetchone()
            return json.loads(row[0]) if row else None

        return await self._call(select)

    # -- SupportsPlannerState (single-use tokens) ----------------------------------------------

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        await self._put("planner_state", "token", token, payload, what="planner_state")

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        return await self._get("planner_state", "token", token)

    async def consume_planner_state(self, token: str) -> dict[str, Any] | None:
        def take(db: sqlite3.Connection) -> dict[str, Any] | None:
            # An immediate transaction: two consumers (even in two processes) cannot both
            # read the state before one of them deletes it.
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT payload FROM planner_state WHERE token = ?", (token,)
                ).fetchone()
                if row is not None:
                    db.execute("DELETE FROM planner_state WHERE token = ?", (token,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return json.loads(row[0]) if row else None

        return await self._call(take)

    # -- SupportsTasks and SupportsSteering ----------------------------------------------------

    async def save_task(self, session_id: str, task: dict[str, Any]) -> None:
        task_id = task_id_of(task)
        text = dumps_exact(task, what="task", store=_STORE)

        def upsert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT INTO tasks (session_id, task_id, payload) VALUES (?, ?, ?) "
                    "ON CONFLICT (session_id, task_id) DO UPDATE SET payload = excluded.payload",
                    (session_id, task_id, text),
                )

        await self._call(upsert)

    async def list_tasks(self, session_id: str) -> Sequence[dict[str, Any]]:
        def select(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute(
                "SELECT payload FROM tasks WHERE session_id = ? ORDER BY rowid", (session_id,)
            ).fetchall()
            return [json.loads(r[0]) for r in rows]

        return await self._call(select)

    async def _append_log(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        key = entry.get(key_field)
        what = {"task_updates": "task_update", "steering": "steering_event"}.get(log, log)
        text = dumps_exact(entry, what=what, store=_STORE)

        def insert(db: sqlite3.Connection) -> str:
            with db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO logs (log, scope, entry_key, payload) "
                    "VALUES (?, ?, ?, ?)",
                    (log, scope, None if key is None else str(key), text),
                )
                if cursor.rowcount:
                    return str(cursor.lastrowid)
                row = db.execute(
                    "SELECT id FROM logs WHERE log = ? AND scope = ? AND entry_key = ?",
                    (log, scope, str(key)),
                ).fetchone()
                return str(row[0])

        return await self._call(insert)

    async def _read_log(self, log: str, scope: str, after: int) -> list[dict[str, Any]]:
        def select(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute(
                "SELECT id, payload FROM logs WHERE log = ? AND scope = ? AND id > ? ORDER BY id",
                (log, scope, after),
            ).fetchall()
            return [{**json.loads(payload), "id": str(row_id)} for row_id, payload in rows]

        return await self._call(select)

    # -- SupportsTrajectories ------------------------------------------------------------------

    async def save_trajectory(self, trace_id: str, trajectory: dict[str, Any]) -> None:
        await self._put("trajectories", "trace_id", trace_id, trajectory, what="trajectory")

    async def get_trajectory(self, trace_id: str) -> dict[str, Any] | None:
        return await self._get("trajectories", "trace_id", trace_id)

    # -- SupportsAudit -------------------------------------------------------------------------

    async def save_audit(self, record: AuditRecord) -> None:
        text = dumps_exact(record.to_dict(), what="audit_record", store=_STORE)
        row = (record.id, record.ts, record.tenant, record.session_id, text)

        def insert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT OR IGNORE INTO audit (id, ts, tenant, session_id, record) "
                    "VALUES (?, ?, ?, ?, ?)",
                    row,
                )

        await self._call(insert)

    async def list_audit(
        self,
        tenant: str | None,
        *,
        session_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditRecord]:
        check_audit_query(tenant, since, limit)

        def select(db: sqlite3.Connection) -> list[AuditRecord]:
            # `IS` matches NULL too: tenant None selects the records without a tenant.
            rows = db.execute(
                "SELECT record FROM audit WHERE tenant IS ? AND (? IS NULL OR session_id = ?) "
                "AND (? IS NULL OR ts >= ?) ORDER BY ts DESC, seq DESC LIMIT ?",
                (tenant, session_id, session_id, since, since, limit),
            ).fetchall()
            return [AuditRecord.from_dict(json.loads(r[0])) for r in reversed(rows)]

        return await self._call(select)

    # table and column names below are constants of this module, never user input
    async def _put(
        self, table: str, column: str, key: str, payload: dict[str, Any], *, what: str
    ) -> None:
        text = dumps_exact(payload, what=what, store=_STORE)

        def upsert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    f"INSERT INTO {table} ({column}, payload) VALUES (?, ?) "
                    f"ON CONFLICT ({column}) DO UPDATE SET payload = excluded.payload",
                    (key, text),
                )

        await self._call(upsert)

    async def _get(self, table: str, column: str, key: str) -> dict[str, Any] | None:
        def select(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute(f"SELECT payload FROM {table} WHERE {column} = ?", (key,)).fetchone()
            return json.loads(row[0]) if row else None

        return await self._call(select)

    # -- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection and stop the database thread (idempotent)."""
        if self._closed:
            return
        # Refuse new work before waiting: a call that slipped in while `shut` was queued
        # would otherwise reconnect on the database thread and leak that connection.
        self._closed = True

        def shut() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        # The single database thread runs work in order, so `shut` runs after every call
        # already queued has finished with the connection.
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=False)

    async def close(self) -> None:
        """The same as `aclose()`; kept for code written before `aclose()` existed."""
        await self.aclose()
