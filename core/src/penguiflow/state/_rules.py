"""Rules every state store applies the same way, public so third-party stores agree with ours.

Each rule is written once here: the built-in stores and the first-party plugins call these,
so a store written against them behaves like the others (same idempotency, same errors).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from ._errors import StoreRequestError
from ._models import StoredEvent

__all__ = ["check_binding_query", "event_fingerprint", "log_cursor", "task_id_of"]


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
