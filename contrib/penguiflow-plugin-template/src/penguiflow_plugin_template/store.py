"""`jsonl:///path/to/state.jsonl`: a durable state store in one append-only JSON-lines file.

It implements the `StateStore` protocol and every optional capability the kernel defines,
using only public kernel names: the `SessionLogs` mixin for the task-update and steering
logs, the shared rules (`event_fingerprint`, `task_id_of`, `check_binding_query`) and
`StoreClosedError`. Copy the parts you need.

Every write appends one record (a JSON object with a `"type"`); reads replay the file, and
for keyed records the last one wins. That keeps the file format trivial and crash-safe (a
torn last line is ignored) at the cost of reading the whole file per call: fine for a
template and small deployments, not for large histories. File I/O runs in a worker thread
so the event loop never blocks; one lock per store orders this process's writers. Two
processes writing one file concurrently are not supported.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from penguiflow.errors import ConfigurationError, InvalidTypeError
from penguiflow.resources import AsyncResource
from penguiflow.state import (
    AuditRecord,
    RemoteBinding,
    SessionLogs,
    StoreClosedError,
    StoredEvent,
    check_binding_query,
    event_fingerprint,
    select_audit,
    task_id_of,
)

__all__ = ["JsonLinesStateStore"]

Record = dict[str, Any]


def _path_from_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "jsonl" or not parts.path:
        raise ConfigurationError(
            f"bad state store URL {url!r}: expected jsonl:///absolute/path/events.jsonl"
        )
    return Path(parts.path)


class JsonLinesStateStore(SessionLogs, AsyncResource):
    """Every capability of `penguiflow.state`, kept in one JSON-lines file.

    Close it with `await store.aclose()` or `async with store:`; afterwards every call raises
    `StoreClosedError`. A new store on the same URL sees everything written before."""

    def __init__(self, url: str, **options: Any) -> None:
        if options:
            raise InvalidTypeError(f"jsonl state store takes no options; got {sorted(options)}")
        self.url = url
        self.path = _path_from_url(url)
        self._lock = asyncio.Lock()
        self._closed = False

    # -- the file ------------------------------------------------------------------------------

    def _open(self) -> asyncio.Lock:
        """The lock every call holds; refusing here keeps a closed store from doing work."""
        if self._closed:
            raise StoreClosedError(self)
        return self._lock

    async def _records(self, kind: str) -> list[Record]:
        """Every record of `kind`, oldest first (call with the lock held)."""
        return [r for r in await asyncio.to_thread(self._read_all) if r.get("type") == kind]

    async def _write(self, kind: str, **fields: Any) -> None:
        await asyncio.to_thread(self._append_line, {"type": kind, **fields})

    def _append_line(self, record: Record) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    def _read_all(self) -> list[Record]:
        if not self.path.exists():
            return []
        records = []
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    # Only a write cut short by a crash leaves a partial line; skip it rather
                    # than refuse to open the whole file.
                    continue
        return records

    async def aclose(self) -> None:
        """Refuse further calls (idempotent); waits for a call that is writing to finish."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:  # nothing to release: files are opened per call
            pass

    # -- StateStore ----------------------------------------------------------------------------

    async def save_event(self, event: StoredEvent) -> None:
        fingerprint = event_fingerprint(event)  # the kernel's idempotency rule
        async with self._open():
            if all(r["fingerprint"] != fingerprint for r in await self._records("event")):
                await self._write("event", fingerprint=fingerprint, event=asdict(event))

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        async with self._open():
            records = await self._records("event")
        events = [StoredEvent(**r["event"]) for r in records if r["event"]["trace_id"] == trace_id]
        return sorted(events, key=lambda e: e.ts)

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        async with self._open():
            await self._write("binding", binding=asdict(binding))

    # -- SupportsConversationBindings ----------------------------------------------------------

    async def _bindings(self) -> list[RemoteBinding]:
        """Current bindings, least recently saved first (call with the lock held)."""
        latest: dict[tuple[str, str], RemoteBinding] = {}
        terminal: set[tuple[str, str]] = set()
        for record in await asyncio.to_thread(self._read_all):
            if record.get("type") == "binding":
                binding = RemoteBinding(**record["binding"])
                key = (binding.trace_id, binding.task_id)
                latest.pop(key, None)  # re-inserted: a saved-again binding counts as newest
                latest[key] = binding
                terminal.discard(key)
            elif record.get("type") == "binding_terminal":
                terminal.add((record["trace_id"], record["task_id"]))
        for key in terminal & latest.keys():
            latest[key].is_terminal = True
        return list(latest.values())

    async def find_binding(
        self, *, trace_id: str | None = None, context_id: str | None = None
    ) -> RemoteBinding | None:
        check_binding_query(trace_id, context_id)
        async with self._open():
            bindings = await self._bindings()
        for binding in reversed(bindings):
            if (trace_id is None or binding.trace_id == trace_id) and (
                context_id is None or binding.context_id == context_id
            ):
                return binding
        return None

    async def list_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        async with self._open():
            return [b for b in await self._bindings() if b.trace_id == trace_id]

    async def mark_binding_terminal(self, *, trace_id: str, task_id: str) -> None:
        async with self._open():
            await self._write("binding_terminal", trace_id=trace_id, task_id=task_id)

    # -- keyed documents: memory state, planner pause state, trajectories ----------------------

    async def _latest(self, kind: str, key: str) -> Any:
        """The value of the last `kind` record for `key`; `None` if none or deleted."""
        value = None
        for record in await self._records(kind):
            if record["key"] == key:
                value = record.get("value")
        return value

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        async with self._open():
            await self._write("memory", key=key, value=state)

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        async with self._open():
            state: dict[str, Any] | None = await self._latest("memory", key)
            return state

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        async with self._open():
            await self._write("planner", key=token, value=payload)

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        async with self._open():
            payload: dict[str, Any] | None = await self._latest("planner", token)
            return payload

    async def consume_planner_state(self, token: str) -> dict[str, Any] | None:
        # Single use: reading and the tombstone (a record with no value) happen under one
        # lock, so of several concurrent consumers exactly one gets the state.
        async with self._open():
            payload: dict[str, Any] | None = await self._latest("planner", token)
            if payload is not None:
                await self._write("planner", key=token, value=None)
            return payload

    async def save_trajectory(self, trace_id: str, trajectory: dict[str, Any]) -> None:
        async with self._open():
            await self._write("trajectory", key=trace_id, value=trajectory)

    async def get_trajectory(self, trace_id: str) -> dict[str, Any] | None:
        async with self._open():
            trajectory: dict[str, Any] | None = await self._latest("trajectory", trace_id)
            return trajectory

    # -- SupportsTasks (the logs come from SessionLogs) ----------------------------------------

    async def save_task(self, session_id: str, task: dict[str, Any]) -> None:
        task_id = task_id_of(task)  # the kernel's rule: a non-empty task_id, as a string
        async with self._open():
            await self._write("task", session_id=session_id, task_id=task_id, task=task)

    async def list_tasks(self, session_id: str) -> Sequence[dict[str, Any]]:
        async with self._open():
            records = await self._records("task")
        tasks: dict[str, dict[str, Any]] = {}  # first save fixes the order, last one the value
        for record in records:
            if record["session_id"] == session_id:
                tasks[record["task_id"]] = record["task"]
        return list(tasks.values())

    async def _append_log(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        async with self._open():
            records = await self._records("log")
            key = entry.get(key_field)
            if key is not None:
                for record in records:
                    if (record["log"], record["scope"]) == (log, scope) and record["entry"].get(
                        key_field
                    ) == key:
                        return str(record["id"])
            # Ids are shared by every log of the file and only grow: max + 1.
            entry_id = max((int(r["id"]) for r in records), default=0) + 1
            await self._write("log", log=log, scope=scope, id=entry_id, entry=entry)
            return str(entry_id)

    async def _read_log(self, log: str, scope: str, after: int) -> list[dict[str, Any]]:
        # SessionLogs turned the caller's since_id into `after` (log_cursor): just compare.
        async with self._open():
            records = await self._records("log")
        return [
            {**r["entry"], "id": str(r["id"])}
            for r in records
            if (r["log"], r["scope"]) == (log, scope) and int(r["id"]) > after
        ]

    # -- SupportsPlannerEvents -----------------------------------------------------------------

    async def save_planner_event(self, trace_id: str, event: dict[str, Any]) -> None:
        async with self._open():
            await self._write("planner_event", trace_id=trace_id, event=event)

    async def list_planner_events(self, trace_id: str) -> Sequence[dict[str, Any]]:
        async with self._open():
            records = await self._records("planner_event")
        return [r["event"] for r in records if r["trace_id"] == trace_id]

    # -- SupportsArtifacts ---------------------------------------------------------------------

    async def put_artifact(self, key: str, data: bytes, *, mime_type: str | None = None) -> str:
        # The reference names the key and the content, so storing other bytes under the same
        # key never changes what an earlier reference returns.
        ref = f"{key}@sha256:{hashlib.sha256(data).hexdigest()}"
        encoded = base64.b64encode(data).decode("ascii")
        async with self._open():
            await self._write("artifact", key=ref, value=encoded, mime_type=mime_type)
        return ref

    async def get_artifact(self, ref: str) -> bytes | None:
        async with self._open():
            encoded: str | None = await self._latest("artifact", ref)
        return base64.b64decode(encoded) if encoded is not None else None

    # -- SupportsAudit -------------------------------------------------------------------------

    async def save_audit(self, record: AuditRecord) -> None:
        async with self._open():
            # Idempotent by id: a record saved again (a retry) is kept once.
            if all(r["record"]["id"] != record.id for r in await self._records("audit")):
                await self._write("audit", record=record.to_dict())

    async def list_audit(
        self,
        tenant: str | None,
        *,
        session_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditRecord]:
        async with self._open():
            records = await self._records("audit")
        # The kernel's rule (checks, tenant filter, most recent `limit`, oldest first).
        saved = [AuditRecord.from_dict(r["record"]) for r in records]
        return select_audit(saved, tenant, session_id=session_id, since=since, limit=limit)
