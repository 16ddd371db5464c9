"""`redis://host:port/db`: a state store on Redis (redis-py's asyncio client).

Also `redis+sentinel://h:26379,h:26380/<master>/<db>` (follows failovers) and
`redis+cluster://h:7000,h:7001` (see `_connect`). On a cluster every key of one store carries
the hash tag `{<prefix>}`, so the store lives in one slot (one master) and its transactions
work there as on one server; give stores different prefixes to spread them over the masters.

Key layout, all under `<prefix>:` — events: a sorted set per trace (score = timestamp, member =
the canonical JSON, so saving an identical event twice stores it once); bindings: a hash per
trace plus a context-id index; memory, planner tokens and trajectories: plain strings; tasks:
a hash per session plus an insertion-order sorted set; logs: a sorted set per (log, session)
scored by an id from one counter, with a hash making `update_id` / `event_id` idempotent;
audit records: a hash by record id, indexed by sorted sets per tenant and per (tenant,
session) scored by time.

Close it with `await store.aclose()` or `async with store:`; a closed store raises
`StoreClosedError` instead of letting redis-py quietly open new connections.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from penguiflow.errors import ConfigurationError
from penguiflow.resources import redact_url
from penguiflow.state import (
    AuditRecord,
    RemoteBinding,
    SessionLogs,
    StoreClosedError,
    StoredEvent,
    check_audit_query,
    check_binding_query,
    task_id_of,
)
from penguiflow.state.exact_json import dumps_exact

from ._resource import RedisResource, single_address

__all__ = ["RedisStateStore"]


def _dumps(value: Any) -> str:
    """Events and their kin: lenient (a payload value that is not JSON is saved as text rather
    than the whole event lost)."""
    return json.dumps(value, sort_keys=True, default=str)


_STORE = "the redis state store"


def _state(value: Any, what: str) -> str:
    """State that must load back exactly as saved (planner state, memory, tasks, logs): a
    value JSON cannot hold is refused, naming where it is."""
    return dumps_exact(value, what=what, store=_STORE)


class RedisStateStore(SessionLogs, RedisResource):
    """A durable, shareable state store; every capability of `penguiflow.state`.

    `aclose()` closes its connections; a closed store raises `StoreClosedError`."""

    closed_error = StoreClosedError

    def __init__(self, url: str, *, prefix: str = "penguiflow", **redis_options: Any) -> None:
        address = single_address(url)
        if not prefix or any(c in prefix for c in ":{}"):
            raise ConfigurationError(
                f"prefix must be a non-empty string without ':', '{{' or '}}' (got {prefix!r})"
            )
        self.prefix = prefix
        # On a cluster, one hash tag for the whole store: its multi-key transactions (a
        # binding and its context index, a task and its order) must stay in one slot.
        self._base = f"{{{prefix}}}" if address.kind == "cluster" else prefix
        self._open(address, redis_options)

    def __repr__(self) -> str:
        return f"RedisStateStore({redact_url(self.url)!r}, prefix={self.prefix!r})"

    def _key(self, *parts: str) -> str:
        return ":".join((self._base, *parts))

    # -- StateStore ----------------------------------------------------------------------------

    async def save_event(self, event: StoredEvent) -> None:
        trace = event.trace_id or ""
        await self._redis.zadd(self._key("events", trace), {_dumps(asdict(event)): event.ts})

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        members = await self._redis.zrange(self._key("events", trace_id), 0, -1)
        return [StoredEvent(**json.loads(member)) for member in members]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        order = await self._redis.incr(self._key("seq"))
        record = _dumps({"order": order, "binding": asdict(binding)})
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key("bindings", binding.trace_id), binding.task_id, record)
        if binding.context_id is not None:
            pipe.hset(self._key("binding-contexts"), binding.context_id, record)
        await pipe.execute()

    # -- SupportsConversationBindings ----------------------------------------------------------

    async def find_binding(
        self, *, trace_id: str | None = None, context_id: str | None = None
    ) -> RemoteBinding | None:
        check_binding_query(trace_id, context_id)
        if trace_id is not None:
            candidates = await self._bindings(trace_id)
            if context_id is not None:
                candidates = [b for b in candidates if b.context_id == context_id]
            return candidates[-1] if candidates else None
        raw = await self._redis.hget(self._key("binding-contexts"), context_id)
        return RemoteBinding(**json.loads(raw)["binding"]) if raw else None

    async def list_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        return await self._bindings(trace_id)

    async def _bindings(self, trace_id: str) -> list[RemoteBinding]:
        records = [
            json.loads(r)
            for r in (await self._redis.hgetall(self._key("bindings", trace_id))).values()
        ]
        records.sort(key=lambda r: r["order"])
        return [RemoteBinding(**r["binding"]) for r in records]

    async def mark_binding_terminal(self, *, trace_id: str, task_id: str) -> None:
        raw = await self._redis.hget(self._key("bindings", trace_id), task_id)
        if raw is None:
            return
        record = json.loads(raw)
        record["binding"]["is_terminal"] = True
        await self._redis.hset(self._key("bindings", trace_id), task_id, _dumps(record))

    # -- memory, planner tokens, trajectories --------------------------------------------------

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        await self._redis.set(self._key("memory", key), _state(state, "memory_state"))

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._key("memory", key))
        return json.loads(raw) if raw is not None else None

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        await self._redis.set(self._key("planner", token), _state(payload, "planner_state"))

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._key("planner", token))
        return json.loads(raw) if raw is not None else None

    async def consume_planner_state(self, token: str) -> dict[str, Any] | None:
        raw = await self._redis.getdel(self._key("planner", token))  # atomic: single use
        return json.loads(raw) if raw is not None else None

    async def save_trajectory(self, trace_id: str, trajectory: dict[str, Any]) -> None:
        await self._redis.set(self._key("trajectory", trace_id), _state(trajectory, "trajectory"))

    async def get_trajectory(self, trace_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._key("trajectory", trace_id))
        return json.loads(raw) if raw is not None else None

    # -- tasks and session logs ----------------------------------------------------------------

    async def save_task(self, session_id: str, task: dict[str, Any]) -> None:
        task_id = task_id_of(task)
        order = await self._redis.incr(self._key("seq"))
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key("tasks", session_id), task_id, _state(task, "task"))
        pipe.zadd(self._key("task-order", session_id), {task_id: order}, nx=True)
        await pipe.execute()

    async def list_tasks(self, session_id: str) -> Sequence[dict[str, Any]]:
        order = await self._redis.zrange(self._key("task-order", session_id), 0, -1)
        if not order:
            return []
        raw = await self._redis.hmget(self._key("tasks", session_id), order)
        return [json.loads(r) for r in raw if r is not None]

    async def _append_log(self, log: str, scope: str, entry: dict[str, Any], key_field: str) -> str:
        entry_id = str(await self._redis.incr(self._key("seq")))
        key = entry.get(key_field)
        if key is not None:
            claimed = await self._redis.hsetnx(
                self._key("log-keys", log, scope), str(key), entry_id
            )
            if not claimed:
                existing: str = await self._redis.hget(self._key("log-keys", log, scope), str(key))
                return existing
        member = _state({"id": entry_id, "entry": entry}, log)
        await self._redis.zadd(self._key("log", log, scope), {member: int(entry_id)})
        return entry_id

    async def _read_log(self, log: str, scope: str, after: int) -> list[dict[str, Any]]:
        # Entries are scored by their id: "(N" is Redis's exclusive lower bound.
        members = await self._redis.zrangebyscore(self._key("log", log, scope), f"({after}", "+inf")
        records = [json.loads(m) for m in members]
        return [{**r["entry"], "id": r["id"]} for r in records]

    # -- audit trail ---------------------------------------------------------------------------

    def _audit_index(self, tenant: str | None, session_id: str | None = None) -> str:
        # Ids are percent-escaped so no tenant or session can name another's index (`:` is
        # escaped); "t=" keeps a tenant apart from "none", the records without one.
        who = "none" if tenant is None else "t=" + quote(tenant, safe="")
        if session_id is None:
            return self._key("audit-by", who)
        return self._key("audit-by", who, "s=" + quote(session_id, safe=""))

    async def save_audit(self, record: AuditRecord) -> None:
        order = await self._redis.incr(self._key("seq"))
        stored = _state({"order": order, "record": record.to_dict()}, "audit_record")
        if not await self._redis.hsetnx(self._key("audit"), record.id, stored):
            # Saved before: index it again under its first order, so a save cut short
            # between the two steps is completed by the retry (the same member and score).
            order = json.loads(await self._redis.hget(self._key("audit"), record.id))["order"]
        # Members sort by their zero-padded order within one timestamp: save order.
        member = f"{order:020d}:{record.id}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(self._audit_index(record.tenant), {member: record.ts})
        if record.session_id is not None:
            pipe.zadd(self._audit_index(record.tenant, record.session_id), {member: record.ts})
        await pipe.execute()

    async def list_audit(
        self,
        tenant: str | None,
        *,
        session_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditRecord]:
        check_audit_query(tenant, since, limit)
        newest_first = await self._redis.zrevrangebyscore(
            self._audit_index(tenant, session_id),
            "+inf",
            "-inf" if since is None else repr(float(since)),
            start=0,
            num=limit,
        )
        if not newest_first:
            return []
        ids = [member.split(":", 1)[1] for member in reversed(newest_first)]
        raw = await self._redis.hmget(self._key("audit"), ids)
        return [AuditRecord.from_dict(json.loads(r)["record"]) for r in raw if r is not None]
