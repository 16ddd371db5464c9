"""`sqlite://PATH`: the embedded durable state store (standard library only).

All database work runs on one dedicated thread that owns the connection, so the event loop
never blocks and SQLite sees a single writer. URLs follow the usual convention:
`sqlite:///flows.db` is relative to the working directory, `sqlite:////var/lib/flows.db` is
absolute, and `sqlite:///:memory:` lives as long as the store.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..errors import ConfigurationError, InvalidTypeError
from ..resources import AsyncResource
from ._errors import SchemaVersionError, StoreClosedError
from ._logs import SessionLogs
from ._models import RemoteBinding, StoredEvent
from ._rules import check_binding_query, event_fingerprint, task_id_of

__all__ = ["SCHEMA_VERSION", "SQLiteStateStore"]

T = TypeVar("T")

SCHEMA_VERSION = 2

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
}


def _path_from_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not parts.path.startswith("/") or parts.path == "/":
        raise ConfigurationError(
            f"bad SQLite URL {url!r}: use sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or sqlite:///:memory:"
        )
    return parts.path[1:]


class SQLiteStateStore(SessionLogs, AsyncResource):
    """Events, remote bindings and memory state in one SQLite file.

    Close it with `await store.aclose()` or `async with store:`; afterwards every call
    raises `StoreClosedError`."""

    def __init__(self, url: str = "sqlite:///:memory:", **options: Any) -> None:
        timeout = options.pop("timeout", 30.0)
        if options:
            raise InvalidTypeError(
                f"sqlite state store got unknown option(s) {sorted(options)}; accepted: ['timeout']"
            )
        self.url = url
        self.path = _path_from_url(url)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="penguiflow-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._timeout = float(timeout)
        self._closed = False

    # -- the database thread -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=self._timeout)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._migrate(connection)
            self._connection = connection
        return self._connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has schema version {version}, newer than this penguiflow "
                f"({SCHEMA_VERSION}); upgrade penguiflow to open it"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with connection:
                connection.executescript(_MIGRATIONS[target])
                connection.execute(f"PRAGMA user_version = {target}")

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
        record = json.dumps(asdict(binding), default=str)

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
        text = json.dumps(state, default=str)

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
        await self._put("planner_state", "token", token, payload)

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
        text = json.dumps(task, default=str)

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
        text = json.dumps(entry, default=str)

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
        await self._put("trajectories", "trace_id", trace_id, trajectory)

    async def get_trajectory(self, trace_id: str) -> dict[str, Any] | None:
        return await self._get("trajectories", "trace_id", trace_id)

    # table and column names below are constants of this module, never user input
    async def _put(self, table: str, column: str, key: str, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, default=str)

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
