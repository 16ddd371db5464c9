"""`Context`: a node's (or endpoint's) view of its incoming and outgoing edges."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._graph import Endpoint, Floe, display_name
from .types import Message, StreamChunk

if TYPE_CHECKING:
    from ._flow import PenguiFlow
    from ._playbook import PlaybookFactory
    from .node import Node

__all__ = ["Context"]

_NOT_ATTACHED = "Context is not attached to a running flow"


class Context:
    """What a node uses to talk to the flow: emit, fetch, stream chunks, call playbooks."""

    __slots__ = (
        "_buffer",
        "_fetch_waiters",
        "_incoming",
        "_outgoing",
        "_owner",
        "_round_robin",
        "_runtime",
        "_stream_seq",
    )

    def __init__(self, owner: Node | Endpoint, runtime: PenguiFlow | None = None) -> None:
        self._owner = owner
        self._runtime = runtime
        self._incoming: dict[Node | Endpoint, Floe] = {}
        self._outgoing: dict[Node | Endpoint, Floe] = {}
        self._buffer: deque[Any] = deque()
        self._stream_seq: dict[str, int] = {}
        self._fetch_waiters: list[asyncio.Future[None]] = []
        self._round_robin = 0

    def __repr__(self) -> str:
        return f"Context({display_name(self._owner)})"

    @property
    def owner(self) -> Node | Endpoint:
        return self._owner

    @property
    def runtime(self) -> PenguiFlow | None:
        return self._runtime

    def add_incoming_floe(self, floe: Floe) -> None:
        if floe.source is not None:
            self._incoming[floe.source] = floe

    def add_outgoing_floe(self, floe: Floe) -> None:
        if floe.target is not None:
            self._outgoing[floe.target] = floe

    # -- target resolution -------------------------------------------------------------------

    def _resolve(self, targets: Any, floes: dict[Node | Endpoint, Floe]) -> list[Floe]:
        if targets is None:
            return list(floes.values())
        if isinstance(targets, Endpoint | str) or not isinstance(targets, Iterable):
            targets = (targets,)
        resolved: list[Floe] = []
        for target in targets:
            floe = floes.get(target)
            if floe is None:
                owner = display_name(self._owner)
                known = ", ".join(sorted(display_name(v) for v in floes)) or "none"
                raise KeyError(
                    f"Unknown target {display_name(target)} for {owner} "
                    f"(edges of {owner} lead to: {known}; connect it with "
                    f"{owner}.to(...) when building the flow)"
                )
            resolved.append(floe)
        return resolved

    # -- emitting ----------------------------------------------------------------------------

    async def emit(self, msg: Any, to: Any = None) -> None:
        """Send `msg` to every successor, or to `to` (node(s) or endpoint); waits when full."""
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError(_NOT_ATTACHED)
        floes = self._outgoing.values() if to is None else self._resolve(to, self._outgoing)
        for floe in floes:
            await runtime._send(floe, msg)

    def emit_nowait(self, msg: Any, to: Any = None) -> None:
        """Like `emit` but never waits: a full queue raises `asyncio.QueueFull`."""
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError(_NOT_ATTACHED)
        floes = self._outgoing.values() if to is None else self._resolve(to, self._outgoing)
        for floe in floes:
            runtime._send_nowait(floe, msg)

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
        """Stream one chunk of a reply to `parent`, numbered per stream id, with backpressure."""
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError(_NOT_ATTACHED)
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
        if previous is not None:
            # A stream may not run ahead of its consumer: the chunk in flight counts as one.
            await runtime._traces.wait_capacity(parent.trace_id, offset=1)
        await self.emit(message, to=to)
        return chunk

    # -- fetching ----------------------------------------------------------------------------

    async def fetch(self, from_: Any = None) -> Any:
        """The next item from the incoming edges (or `from_`), buffered items first."""
        if self._buffer:
            return self._buffer.popleft()
        floes = self._incoming_floes(from_)
        if len(floes) == 1:
            return await floes[0].queue.get()
        return await self._fetch_first(floes)

    async def fetch_any(self, from_: Any = None) -> Any:
        """The first item available on any incoming edge (or on `from_`)."""
        if self._buffer:
            return self._buffer.popleft()
        return await self._fetch_first(self._incoming_floes(from_))

    def fetch_nowait(self, from_: Any = None) -> Any:
        if self._buffer:
            return self._buffer.popleft()
        for floe in self._resolve(from_, self._incoming):
            if not floe.queue.empty():
                return floe.queue.get_nowait()
        raise asyncio.QueueEmpty("no messages available")

    def _incoming_floes(self, from_: Any) -> list[Floe]:
        floes = self._resolve(from_, self._incoming)
        if not floes:
            raise RuntimeError("context has no incoming floes to fetch from")
        return floes

    async def _fetch_first(self, floes: list[Floe]) -> Any:
        # One future woken by any of the queues, instead of one get() task per queue: no
        # item is ever taken from a queue and dropped, and nothing is allocated per edge.
        count = len(floes)
        while True:
            start = self._round_robin
            for offset in range(count):
                queue = floes[(start + offset) % count].queue
                if not queue.empty():
                    self._round_robin = (start + offset + 1) % count
                    return queue.get_nowait()
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            for floe in floes:
                floe.queue.listener = self._wake_fetchers
            self._fetch_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._fetch_waiters:
                    self._fetch_waiters.remove(waiter)

    def _wake_fetchers(self) -> None:
        waiters = self._fetch_waiters
        if waiters:
            self._fetch_waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- helpers -----------------------------------------------------------------------------

    async def call_playbook(
        self, playbook: PlaybookFactory, parent_msg: Message, *, timeout: float | None = None
    ) -> Any:
        """Run a subflow for `parent_msg` and return its first result (cancelled with us)."""
        from ._playbook import call_playbook

        return await call_playbook(playbook, parent_msg, timeout=timeout, runtime=self._runtime)

    def outgoing_count(self) -> int:
        return len(self._outgoing)

    def queue_depth_in(self) -> int:
        return sum(floe.queue.qsize() for floe in self._incoming.values())

    def queue_depth_out(self) -> int:
        return sum(floe.queue.qsize() for floe in self._outgoing.values())
