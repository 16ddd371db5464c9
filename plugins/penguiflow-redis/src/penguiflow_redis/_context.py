"""The `ctx` a node receives on a redis worker: where what it sends goes.

What happens to a message in a node (retries, budgets, final answers...) is the kernel's node
engine; this context only turns sends into stream outputs. Outputs of one message are collected
and written together with the input's ack (see `_streams.COMMIT_SCRIPT`), so a retried or
redelivered message never sends them twice. An output to a node this worker runs next itself
(operator chaining, see `_chain`) is kept as the object it is, in `chained`, instead of being
encoded. Stream chunks are the exception: they are sent at once, because streaming is their
point; the client drops a chunk it has already seen (same stream id and sequence number).
Everything a message sends goes to the shard of the entry it came from (`shard`): its outputs
are committed with that entry's ack, which touches that shard's keys only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from penguiflow.core import ROOKERY
from penguiflow.errors import UsageError
from penguiflow.node import Node
from penguiflow.observability import enabled
from penguiflow.runtime import chunk_message, unknown_target
from penguiflow.tracecontext import stamp_message
from penguiflow.types import Message, StreamChunk

if TYPE_CHECKING:
    from ._worker import WorkerPool
    from ._worker_shard import WorkerShard

__all__ = ["WorkerContext"]

_NO_FETCH = (
    "ctx.{what}() is not available on the redis runtime: a node receives its message as its "
    "first argument, and a trace's messages may reach different workers; for fan-in use "
    "join_k, whose buckets the redis runtime keeps in Redis"
)


class WorkerContext:
    """Collects what one message's processing sends; mirrors the local `Context` API."""

    __slots__ = (
        "_chain",
        "_node",
        "_pool",
        "_reply",
        "_shard",
        "_stream_seq",
        "_trace",
        "chained",
        "outputs",
    )

    def __init__(
        self,
        pool: WorkerPool,
        shard: WorkerShard,
        node: Node,
        trace_id: str | None,
        reply: str,
        *,
        chain: bool = False,
    ) -> None:
        """With `chain`, outputs to the nodes `pool.chains.targets` go to `chained`; node
        streams are `shard`'s."""
        self._pool = pool
        self._shard = shard
        self._node = node
        self._trace = trace_id
        self._reply = reply
        self._chain = chain
        self._stream_seq: dict[str, int] = {}
        #: (stream, encoded envelope) pairs, written when the message commits
        self.outputs: list[tuple[str, str]] = []
        #: (node, item) pairs this worker runs next, in this task (see `_chain`)
        self.chained: list[tuple[str, Any]] = []

    def __repr__(self) -> str:
        return f"WorkerContext(node={self._node.name!r}, trace={self._trace!r})"

    @property
    def owner(self) -> Node:
        return self._node

    @property
    def runtime(self) -> None:
        return None

    @property
    def trace_id(self) -> str | None:
        """The trace of the message being processed."""
        return self._trace

    @property
    def reply(self) -> str:
        """The reply stream of the client that emitted the trace."""
        return self._reply

    # -- what events report about this context ------------------------------------------------

    def outgoing_count(self) -> int:
        name = str(self._node.name)
        definition = self._pool.definition
        return len(definition.successors[name]) + (name in definition.egress)

    def queue_depth_in(self) -> int:
        return 0  # a stream's length is not known without a round trip; events report 0

    def queue_depth_out(self) -> int:
        return 0

    # -- sending -------------------------------------------------------------------------------

    def _targets(self, to: Any) -> list[str | None]:
        """The nodes `to` names among the node's successors; None for Rookery (the reply)."""
        pool = self._pool
        name = str(self._node.name)
        successors = pool.definition.successors[name]
        is_egress = name in pool.definition.egress
        if to is None:
            found: list[str | None] = list(successors)
            if is_egress:
                found.append(None)
            return found
        targets: Iterable[Any] = (to,) if isinstance(to, Node) or to is ROOKERY else to
        if not isinstance(targets, Iterable):
            targets = (targets,)
        found = []
        for target in targets:
            if target is ROOKERY and is_egress:
                found.append(None)
            elif isinstance(target, Node) and str(target.name) in successors:
                found.append(str(target.name))
            else:
                known = [*successors, *(["Rookery"] if is_egress else [])]
                raise unknown_target(name, str(getattr(target, "name", target)), known)
        return found

    def _streams(self, to: Any) -> list[str]:
        keys = self._shard.keys
        return [
            self._reply if target is None else keys.node_stream(target)
            for target in self._targets(to)
        ]

    def _envelope(self, item: Any, *, chunk: bool = False, stamped: bool = False) -> str:
        if not stamped and enabled():
            # The node engine runs the node in its span while sinks listen: what the node
            # sends carries it, so the next worker's span is its child (same as in process).
            item = stamp_message(item)
        trace = getattr(item, "trace_id", None) or self._trace
        return self._pool.envelope(item, trace, self._reply, chunk=chunk)

    async def emit(self, msg: Any, to: Any = None) -> None:
        self.emit_nowait(msg, to)

    def emit_nowait(self, msg: Any, to: Any = None) -> None:
        targets = self._targets(to)
        if enabled():
            msg = stamp_message(msg)  # the next node's span is this node's child, here too
        local = self._pool.chains.targets if self._chain else ()
        remote = [target for target in targets if target not in local]
        # Everything that can fail (an unknown target, a payload that cannot cross processes)
        # fails before anything is kept: a partial fan-out would be half sent.
        data = self._envelope(msg, stamped=True) if remote else None
        if len(remote) < len(targets):
            self._pool.check_crossable(msg)
        keys = self._shard.keys
        for target in targets:
            if target in local:
                assert target is not None
                self.chained.append((target, msg))
            else:
                assert data is not None
                stream = self._reply if target is None else keys.node_stream(target)
                self.outputs.append((stream, data))

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
        chunk, message, _ = chunk_message(
            self._stream_seq,
            parent=parent,
            text=text,
            stream_id=stream_id,
            seq=seq,
            done=done,
            meta=meta,
        )
        data = self._envelope(message, chunk=True)
        await self._pool.send_now(self._shard, [(stream, data) for stream in self._streams(to)])
        return chunk

    # -- not available across processes --------------------------------------------------------

    async def fetch(self, from_: Any = None) -> Any:
        raise UsageError(_NO_FETCH.format(what="fetch"))

    async def fetch_any(self, from_: Any = None) -> Any:
        raise UsageError(_NO_FETCH.format(what="fetch_any"))

    def fetch_nowait(self, from_: Any = None) -> Any:
        raise UsageError(_NO_FETCH.format(what="fetch_nowait"))

    async def call_playbook(self, *args: Any, **kwargs: Any) -> Any:
        raise UsageError(
            "ctx.call_playbook() is not available on the redis runtime yet; run the playbook "
            "as its own flow, or call it from a node of a local flow"
        )
