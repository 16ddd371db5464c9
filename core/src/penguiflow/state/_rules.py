"""Rules every state store applies the same way, public so third-party stores agree with ours.

Each rule is written once here: the built-in stores and the first-party plugins call these,
so a store written against them behaves like the others (same idempotency, same errors).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from ._errors import StoreRequestError
from ._models import AuditRecord, StoredEvent

__all__ = [
    "check_audit_query",
    "check_binding_query",
    "event_fingerprint",
    "log_cursor",
    "select_audit",
    "task_id_of",
]


def event_fingerprint(event: StoredEvent) -> str:
    """A stable hex digest of every field of `event`.

    Stores keep one copy per fingerprint, which makes `save_event` idempotent (the runtime may
    save an event again after a retry). Durable stores persist it, so the recipe never
    changes: SHA-256 of the event's fields as JSON with sorted keys."""
    canonical = json.dumps(asdict(event), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def task_id_of(task: dict[str, Any]) -> str:
    """The key `save_task` upserts by: `task["task_id"]` as a string.

    Raises `StoreRequestError` (a `ValueError`) when it is missing or empty."""
    task_id = task.get("task_id")
    if not task_id:
        raise StoreRequestError(
            f"save_task needs a task with a non-empty 'task_id' (got keys {sorted(task)})"
        )
    return str(task_id)


def check_binding_query(trace_id: str | None, context_id: str | None) -> None:
    """Refuse a `find_binding` call that names neither a trace nor a context.

    Raises `StoreRequestError` (a `ValueError`)."""
    if trace_id is None and context_id is None:
        raise StoreRequestError(
            "find_binding needs trace_id or context_id (or both); it got neither"
        )


def log_cursor(since_id: str | int | None) -> int:
    """The id after which a session-log read starts: `0` (the whole log) for `None`.

    Log ids are positive integers handed out in order and returned as strings, so a store
    reads the entries whose id is greater than `log_cursor(since_id)` (an exclusive cursor).
    Anything that is not such an id raises `StoreRequestError` (a `ValueError`) instead of
    silently reading the wrong part of the log."""
    if since_id is None:
        return 0
    if isinstance(since_id, bool) or not isinstance(since_id, str | int):
        raise StoreRequestError(
            f"since_id must be an id returned by the log (a string of digits) or None; "
            f"got {type(since_id).__name__} {since_id!r}"
        )
    text = str(since_id).strip()
    if not (text.isascii() and text.isdecimal()):
        raise StoreRequestError(
            f"since_id must be an id returned by the log (a string of digits) or None; "
            f"got {since_id!r}"
        )
    return int(text)


def check_audit_query(tenant: object, since: object, limit: object) -> None:
    """Refuse `list_audit` arguments a store cannot serve, the same way in every store.

    `tenant` is a string or None (None selects the records that belong to no tenant, such
    as plugin load failures: never every tenant's); `since` a finite number of seconds
    since the epoch or None; `limit` an integer >= 1. Raises `StoreRequestError`."""
    if tenant is not None and not isinstance(tenant, str):
        raise StoreRequestError(
            f"list_audit needs a tenant id (a str) or None for records without a tenant; "
            f"got {type(tenant).__name__} {tenant!r}"
        )
    if since is not None and (
        isinstance(since, bool)
        or not isinstance(since, int | float)
        or not math.isfinite(float(since))
    ):
        raise StoreRequestError(
            f"since must be a time in seconds since the epoch (a finite number, e.g. "
            f"time.time() - 3600) or None; got {since!r}"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise StoreRequestError(f"limit must be an integer >= 1; got {limit!r}")


def select_audit(
    records: Iterable[AuditRecord],
    tenant: str | None,
    *,
    session_id: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """What `list_audit` returns from `records` (given in save order): the records of
    `tenant` (and of `session_id`, when given) saved at or after `since`, the most recent
    `limit` of them, oldest first (by `ts`, then save order). For stores that filter in
    Python; a database store applies the same rule in its query."""
    check_audit_query(tenant, since, limit)
    chosen = [
        (record.ts, index, record)
        for index, record in enumerate(records)
        if record.tenant == tenant
        and (session_id is None or record.session_id == session_id)
        and (since is None or record.ts >= since)
    ]
    chosen.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in chosen[-limit:]]
