"""The `ctx` a node receives on a redis worker, and how a node's result is routed.

Outputs of one invocation are collected and written together with the input's ack (see
`_streams.COMMIT_SCRIPT`), so a retried or redelivered message never sends them twice.
Stream chunks are the exception: they are sent at once, because streaming is their point;
the client drops a chunk it has already seen (same stream id and sequence number).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from penguiflow.core import (
    BUDGET_EXCEEDED_TEXT,
    DEADLINE_EXCEEDED_TEXT,
    ROOKERY,
    TOKEN_BUDGET_EXCEEDED_TEXT,
)
from penguiflow.node import Node
from penguiflow.types import WM, FinalAnswer, Message, StreamChunk

if TYPE_CHECKING:
    from ._worker import WorkerPool

__all__ = ["RoutingError", "WorkerContext"]

_NO_FETCH = (
    "ctx.{what}() is not available on the redis runtime: a node receives its message as its "
    "first argument, and a trace's messages may reach different workers; for fan-in use "
    "join_k, whose buckets the redis runtime keeps in Redis"
)


class RoutingError(Exception):
    """A node's result could not be delivered (unknown target); never retried."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class WorkerContext:
    """Collects what one invocation of a node sends; mirrors the local `Context` API."""

    __slots__ = ("_node", "_pool", "_reply", "_stream_seq", "_trace", "outputs")

    def __init__(self, pool: WorkerPool, node: Node, trace_id: str | None, reply: str) -> None:
        self._pool = pool
        self._node = node
        self._trace = trace_id
        self._reply = reply
        self._stream_seq: dict[str, int] = {}
        #: (stream, encoded envelope) pairs, written when the invocation commits
        self.outputs: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"WorkerContext(node={self._node.name!r}, trace={self._trace!r})"

    @property
    def owner(self) -> Node:
        return self._node

    @property
    def runtime(self) -> None:
        return None

    # -- sending -------------------------------------------------------------------------------

    def _streams(self, to: Any) -> list[str]:
        pool = self._pool
        name = str(self._node.name)
        successors = pool.definition.successors[name]
        is_egress = name in pool.definition.egress
        if to is None:
            streams = [pool.keys.node_stream(s) for s in successors]
            if is_egress:
                streams.append(self._reply)
            return streams
        targets: Iterable[Any] = (to,) if isinstance(to, Node) or to is ROOKERY else to
        if not isinstance(targets, Iterable):
            targets = (targets,)
        streams = []
        for target in targets:
            if target is ROOKERY and is_egress:
                streams.append(self._reply)
            elif isinstance(target, Node) and str(target.name) in successors:
                streams.append(pool.keys.node_stream(str(target.name)))
            else:
                label = getattr(target, "name", target)
                known = ", ".join([*successors, *(["Rookery"] if is_egress else [])]) or "none"
                raise KeyError(
                    f"Unknown target {label} for {name} (edges of {name} lead to: {known}; "
                    f"connect it with {name}.to(...) when building the flow)"
                )
        return streams

    def _envelope(self, item: Any, *, chunk: bool = False) -> str:
        trace = getattr(item, "trace_id", None) or self._trace
        return self._pool.envelope(item, trace, self._reply, chunk=chunk)

    async def emit(self, msg: Any, to: Any = None) -> None:
        self.emit_nowait(msg, to)

    def emit_nowait(self, msg: Any, to: Any = None) -> None:
        data = self._envelope(msg)
        self.outputs.extend((stream, data) for stream in self._streams(to))

    def to_reply(self, item: Any) -> None:
        self.outputs.append((self._reply, self._envelope(item)))

    async def emit_chunk(
        self,
        *,
        parent: Message,
        text: str,
        stream_id: str | None = None,
        seq: int | None = None,
        done: bool = False,
        meta: dict[str, Any] | None = None,
        to: Any = None,
    ) -> StreamChunk:
        sid = stream_id if stream_id is not None else parent.trace_id
        previous = self._stream_seq.get(sid)
        if seq is None:
            seq = 0 if previous is None else previous + 1
        if done:
            self._stream_seq.pop(sid, None)
        else:
            self._stream_seq[sid] = seq
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
        data = self._envelope(message, chunk=True)
        await self._pool.send_now([(stream, data) for stream in self._streams(to)])
        return chunk

    # -- not available across processes --------------------------------------------------------

    async def fetch(self, from_: Any = None) -> Any:
        raise RuntimeError(_NO_FETCH.format(what="fetch"))

    async def fetch_any(self, from_: Any = None) -> Any:
        raise RuntimeError(_NO_FETCH.format(what="fetch_any"))

    def fetch_nowait(self, from_: Any = None) -> Any:
        raise RuntimeError(_NO_FETCH.format(what="fetch_nowait"))

    async def call_playbook(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "ctx.call_playbook() is not available on the redis runtime yet; run the playbook "
            "as its own flow, or call it from a node of a local flow"
        )

    # -- routing a node's return value (the local worker's rules) ------------------------------

    def route_result(self, message: Any, result: Any) -> None:
        if result is None:
            return
        try:
            if isinstance(result, Message):
                payload = result.payload
                if isinstance(payload, WM):
                    self._controller_step(message, result, payload)
                    return
                if isinstance(payload, FinalAnswer):
                    self.to_reply(result)
                    return
            self.emit_nowait(result)
        except (KeyError, TypeError, ValueError) as exc:
            raise RoutingError(exc) from exc

    def _controller_step(self, message: Any, result: Message, wm: WM) -> None:
        deadline = result.deadline_s
        if deadline is not None and time.time() > deadline:
            self._final(result, DEADLINE_EXCEEDED_TEXT)
            return
        if wm.budget_tokens is not None and wm.tokens_used >= wm.budget_tokens:
            self._final(result, TOKEN_BUDGET_EXCEEDED_TEXT)
            return
        hops = wm.hops
        if isinstance(message, Message) and isinstance(message.payload, WM):
            hops = max(hops, message.payload.hops + 1)
        if hops != wm.hops:
            wm = wm.model_copy(update={"hops": hops})
            result = result.model_copy(update={"payload": wm})
        if wm.budget_hops is not None and hops >= wm.budget_hops:
            self._final(result, BUDGET_EXCEEDED_TEXT)
            return
        if wm.budget_hops is None and wm.budget_tokens is None:
            self.to_reply(result)
        self.emit_nowait(result, to=self._node)

    def _final(self, result: Message, text: str) -> None:
        self.to_reply(result.model_copy(update={"payload": FinalAnswer(text=text)}))
