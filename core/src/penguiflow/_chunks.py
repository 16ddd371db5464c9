"""Numbering and wrapping streamed chunks: the rule every runtime's `ctx.emit_chunk` follows."""

from __future__ import annotations

from typing import Any

from .types import Message, StreamChunk

__all__ = ["chunk_message"]


def chunk_message(
    counters: dict[str, int],
    *,
    parent: Message,
    text: str,
    stream_id: str | None,
    seq: int | None,
    done: bool,
    meta: dict[str, Any] | None,
) -> tuple[StreamChunk, Message, bool]:
    """The next chunk of a stream and the `Message` that carries it.

    `counters` holds the last sequence number per stream id of one emitter (one context): the
    stream id defaults to the parent's trace id, numbers count from 0, an explicit `seq`
    becomes the new last number, and `done` forgets the stream so its id can start again.
    The third value says whether the stream had sent chunks before (only later chunks wait
    for the consumer)."""
    sid = stream_id if stream_id is not None else parent.trace_id
    previous = counters.get(sid)
    if seq is None:
        seq = 0 if previous is None else previous + 1
    if done:
        counters.pop(sid, None)
    else:
        counters[sid] = seq
    chunk = StreamChunk(
        stream_id=sid, seq=seq, text=text, done=done, meta=dict(meta) if meta else {}
    )
    message = Message(
        payload=chunk,
        headers=parent.headers,
        trace_id=parent.trace_id,
        deadline_s=parent.deadline_s,
        meta=dict(parent.meta),
    )
    return chunk, message, previous is not None
