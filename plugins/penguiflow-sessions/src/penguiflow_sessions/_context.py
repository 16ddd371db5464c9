"""Helpers for the session context: its hash, JSON-safe copies for background snapshots, and
the background result a merged patch becomes."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import date, datetime
from enum import Enum
from typing import Any

from penguiflow_planner import BackgroundTaskResult
from pydantic import BaseModel

from .models import ContextPatch

__all__ = ["background_result", "context_hash", "json_copy"]


def context_hash(llm_context: dict[str, Any]) -> str | None:
    """SHA-256 of the key-sorted JSON of `llm_context`; None when it is not JSON."""
    try:
        text = json.dumps(llm_context, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Skip:
    pass


_SKIP = _Skip()


def _json_value(value: Any, text: bool = False) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Enum):
        return _json_value(value.value, text)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return _json_value(value.model_dump(mode="json"), text)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            converted = _json_value(item, text)
            if converted is not _SKIP:
                out[str(key)] = converted
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [c for c in (_json_value(item, text) for item in value) if c is not _SKIP]
    # Live objects (clients, locks...) cannot travel with a background task: left out of
    # snapshots; in an update they become their text, so the update can still be stored.
    return _safe_str(value) if text else _SKIP


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def json_copy(value: Any, *, as_text: bool = False) -> Any:
    """A deep, JSON-safe copy: a background task must not share mutable state with the
    foreground, and its snapshot is persisted. Values JSON cannot hold are left out, or
    turned into their text with `as_text=True` (update contents)."""
    converted = _json_value(value, as_text)
    return None if converted is _SKIP else converted


def background_result(
    patch: ContextPatch, *, payload: Any, group_id: str | None
) -> BackgroundTaskResult:
    """What a merged patch leaves in the context for the next foreground turn."""
    return BackgroundTaskResult(
        task_id=patch.task_id,
        group_id=group_id,
        status="completed",
        summary=" ".join(patch.digest) if patch.digest else None,
        payload=payload,
        facts=dict(patch.facts),
        artifacts=[dict(item) for item in patch.artifacts],
        consumed=False,
        completed_at=patch.completed_at.timestamp() if patch.completed_at else time.time(),
    )
