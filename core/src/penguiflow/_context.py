"""`Context`: a node's (or endpoint's) view of its incoming and outgoing edges."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ._chunks import chunk_message
from ._graph import Endpoint, Floe, display_name, unknown_target
from .errors import UsageError
from .types import Message, StreamChunk

if TYPE_CHECKING:
    from ._playbook import PlaybookFactory
    from .node import Node

__all__ = ["Context", "ContextRuntime"]

_NOT_ATTACHED = "Context is not attached to a running flow"


class ContextRuntime(Protocol):
    """What a `Context` needs from the in-process runtime it is attached to.

    Declared here, below the runtime, so this module never imports the flow: `PenguiFlow`
    implements it (its underscored members are private to that pairing)."""

    async def _send_many(self, floes: Iterable[Floe], item: Any) -> None: ...

    def _send_nowait(self, floe: Floe, item: Any) -> None: ...

    async def _wait_for_capacity(self, trace_id: str, offset: int) -> None: ...

    def ensure_trace_event(self, trace_id: str) -> asyncio.Event: ...


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

    def __init__(self, owner: Node | Endpoint, runtime: ContextRuntime | None = None) -> None:
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
    def runtime(self) -> ContextRuntime | None:
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
                raise unknown_target(
                    display_name(self._owner),
                    display_name(target),
                    [display_name(v) for v in floes],
                )
            resolved.append(floe)
        return resolved

    # -- emitting ----------------------------------------------------------------------------

    async def emit(self, msg: Any, to: Any = None) -> None:
        """Send `msg` to every successor, or to `to` (node(s) or endpoint); waits when full."""
        runtime = self._runtime
        if runtime is None:
            raise UsageError(_NOT_ATTACHED)
        floes = self._outgoing.values() if to is None else self._resolve(to, self._outgoing)
        await runtime._send_many(floes, msg)

    def emit_nowait(self, msg: Any, to: Any = None) -> None:
        """Like `emit` but never waits: a full queue raises `asyncio.QueueFull`."""
        runtime = self._runtime
        if runtime is None:
            raise UsageError(_NOT_ATTACHED)
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
            raise UsageError(_NOT_ATTACHED)
        chunk, message, continued = chunk_message(
            self._stream_seq,
            parent=parent,
            text=text,
            stream_id=stream_id,
            seq=seq,
            done=done,
            meta=meta,
        )
        if continued:
            # A stream may not run ahead of its consumer: the chunk in flight counts as one.
            await runtime._wait_for_capacity(parent.trace_id, 1)
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
            raise UsageError("context has no incoming floes to fetch from")
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
