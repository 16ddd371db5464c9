"""`jsonl:///path/to/events.jsonl`: a durable state store in one JSON-lines file.

File I/O runs in a worker thread so the event loop never blocks; one lock per store keeps
concurrent writers from interleaving lines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from penguiflow.state import RemoteBinding, StoredEvent

__all__ = ["JsonLinesStateStore"]


def _path_from_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "jsonl" or not parts.path:
        raise ValueError(
            f"bad state store URL {url!r}: expected jsonl:///absolute/path/events.jsonl"
        )
    return Path(parts.path)


class JsonLinesStateStore:
    """Events and remote bindings appended to a JSON-lines file."""

    def __init__(self, url: str, **options: Any) -> None:
        if options:
            raise TypeError(f"jsonl state store takes no options; got {sorted(options)}")
        self.url = url
        self.path = _path_from_url(url)
        self._lock = asyncio.Lock()

    async def save_event(self, event: StoredEvent) -> None:
        record = {"type": "event", **asdict(event)}
        async with self._lock:
            existing = await asyncio.to_thread(self._read, "event")
            if record not in existing:
                await asyncio.to_thread(self._append, record)

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        records = await asyncio.to_thread(self._read, "event")
        events = [
            StoredEvent(**{k: v for k, v in r.items() if k != "type"})
            for r in records
            if r["trace_id"] == trace_id
        ]
        return sorted(events, key=lambda e: e.ts)

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        record = {"type": "binding", **asdict(binding)}
        async with self._lock:
            if record not in await asyncio.to_thread(self._read, "binding"):
                await asyncio.to_thread(self._append, record)

    async def find_binding(
        self, *, trace_id: str | None = None, context_id: str | None = None
    ) -> RemoteBinding | None:
        for record in reversed(await asyncio.to_thread(self._read, "binding")):
            if (trace_id is None or record["trace_id"] == trace_id) and (
                context_id is None or record["context_id"] == context_id
            ):
                return RemoteBinding(**{k: v for k, v in record.items() if k != "type"})
        return None

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def _read(self, kind: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return [r for r in records if r.get("type") == kind]
