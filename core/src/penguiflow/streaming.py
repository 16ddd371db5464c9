"""Streaming helpers: SSE and WebSocket framing, and driving a flow as a chunk stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from .types import Message, StreamChunk

__all__ = ["chunk_to_ws_json", "emit_stream_events", "format_sse_event", "stream_flow"]


def format_sse_event(
    chunk: StreamChunk, *, event_name: str | None = None, retry_ms: int | None = None
) -> str:
    """A Server-Sent Events frame for `chunk` (event, id, data lines, blank-line terminated)."""
    lines = [
        f"event: {event_name or ('done' if chunk.done else 'chunk')}",
        f"id: {chunk.seq}",
        f"data: {chunk.text}",
    ]
    if chunk.meta:
        lines.append(f"data: {json.dumps(chunk.meta, ensure_ascii=False)}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    return "\n".join(lines) + "\n\n"


def chunk_to_ws_json(chunk: StreamChunk, *, extra: Mapping[str, Any] | None = None) -> str:
    """A JSON text frame for WebSockets: the chunk's fields, updated with `extra`."""
    body: dict[str, Any] = {
        "stream_id": chunk.stream_id,
        "seq": chunk.seq,
        "text": chunk.text,
        "done": chunk.done,
        "meta": chunk.meta,
    }
    if extra:
        body.update(extra)
    return json.dumps(body, ensure_ascii=False)


async def stream_flow(
    flow: Any,
    parent_msg: Message,
    *,
    to: Any = None,
    timeout: float | None = None,
    include_final: bool = False,
) -> AsyncIterator[Any]:
    """Emit `parent_msg` and yield chunks as they arrive, then the final payload.

    Stops after a `done` chunk (unless `include_final`) or after the first non-chunk result.
    The flow keeps running; stopping it is the caller's job.
    """
    await flow.emit(parent_msg, to=to)
    while True:
        fetched = flow.fetch()
        result = await (asyncio.wait_for(fetched, timeout) if timeout is not None else fetched)
        payload = getattr(result, "payload", result)
        if isinstance(payload, StreamChunk):
            yield payload
            if payload.done and not include_final:
                return
            continue
        yield payload
        return


def _default_adapter(item: Any) -> tuple[str, bool, dict[str, Any]]:
    return str(item), False, {}


async def emit_stream_events(
    source: AsyncIterable[Any] | Iterable[Any],
    ctx: Any,
    parent_msg: Message,
    *,
    adapter: Callable[[Any], tuple[str, bool, dict[str, Any]]] | None = None,
    to: Any = None,
    final_meta: dict[str, Any] | None = None,
) -> None:
    """Turn each item of `source` into a chunk; close the stream if no item said `done`."""
    convert = adapter or _default_adapter
    finished = False

    async def emit(item: Any) -> None:
        nonlocal finished
        text, done, meta = convert(item)
        await ctx.emit_chunk(parent=parent_msg, text=text, done=done, meta=meta, to=to)
        finished = finished or done

    if isinstance(source, AsyncIterable):
        async for item in source:
            await emit(item)
    else:
        for item in source:
            await emit(item)
    if not finished:
        await ctx.emit_chunk(parent=parent_msg, text="", done=True, meta=final_meta or {}, to=to)
