"""One blocking read per worker and shard: every served node stream of a shard in one XREADGROUP.

A worker used to run one reader per node, each in its own blocking read: an idle worker
serving ten nodes made ten reads a second and woke ten times. Here one `EntryReader` reads
every stream of the worker's nodes that has a free handler slot, in one XREADGROUP with a long
block, on a connection of its own (a blocked connection can do nothing else).

Handler slots stay per node (`HandlerSlots`; `concurrency` is still messages in progress per
node): a node whose handlers wait for room downstream (backpressure) must never hold the slots
of the node that would make that room. XREADGROUP's COUNT applies to each stream, so a read
takes at most the smallest free count of the streams it names, reserved before it is sent: no
entry ever arrives without a slot for it. A node with no free slot is left out of the read; when
one of its handlers finishes while the read is blocked, the read is woken (CLIENT UNBLOCK from
another connection, which makes it return empty) and the next read names the node again.

Taking over dead workers' entries (`housekeeping`) runs on its own slow cadence, between two
reads: it needs free slots, and a blocked read holds the slots it reserved. The heartbeat and the
cancel listener run elsewhere (see `_worker`); nothing here polls.

A flow split into shards has one reader per shard, each with its own slots: the streams of one
shard share a hash tag, so one XREADGROUP may name them all even on a cluster. The read and
the CLIENT UNBLOCK that wakes it go to the shard's server itself (`_endpoints.locate`, asked
again after each connection error, so a moved slot or a failover is followed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ._endpoints import Endpoint
from ._streams import GROUP, ensure_group, lost_group

__all__ = ["EntryReader", "HandlerSlots"]

logger = logging.getLogger("penguiflow_redis.worker")

#: (node, stream, entry id, fields): what the reader hands over, holding one slot of the node
Start = Callable[[str, str, str, dict[str, str]], None]

#: How long the waker waits before it tries again to wake a read that was not blocked yet
#: (the read was on the wire: CLIENT UNBLOCK found nothing to unblock).
_WAKE_RETRY_S = 0.002


class HandlerSlots:
    """Free handler slots per node, shared by the reader and the claims of dead workers'
    entries. Slots are reserved before a read or claim and given back for what it did not
    return; `on_freed(node)` hears when a node with no free slot gets one again."""

    __slots__ = ("_changed", "_free", "on_freed")

    def __init__(self, nodes: Sequence[str], concurrency: int) -> None:
        self._free = dict.fromkeys(nodes, concurrency)
        self._changed = asyncio.Event()
        self.on_freed: Callable[[str], None] | None = None

    def free(self, node: str) -> int:
        return self._free[node]

    def ready(self) -> list[str]:
        """The nodes with a free slot."""
        return [node for node, free in self._free.items() if free > 0]

    def take(self, node: str, count: int) -> None:
        assert 0 <= count <= self._free[node], (node, count, self._free[node])
        self._free[node] -= count

    def give_back(self, node: str, count: int = 1) -> None:
        if count <= 0:
            return
        was = self._free[node]
        self._free[node] = was + count
        self._changed.set()
        if was == 0 and self.on_freed is not None:
            self.on_freed(node)

    async def wait_for_one(self) -> None:
        """Return once some node has a free slot."""
        while not any(free > 0 for free in self._free.values()):
            self._changed.clear()
            await self._changed.wait()


class EntryReader:
    """Reads new entries of `streams` (node -> stream) for `consumer`, one XREADGROUP at a
    time, and hands each to `start` with a slot of its node taken."""

    def __init__(
        self,
        *,
        locate: Callable[[bool], Awaitable[Endpoint]],
        control: Any,
        consumer: str,
        streams: Mapping[str, str],
        slots: HandlerSlots,
        block_ms: int,
        start: Start,
        outage: Callable[[BaseException], None],
        reachable: Callable[[], None],
        errors: tuple[type[BaseException], ...],
        housekeeping: Callable[[], Awaitable[None]],
        housekeeping_every_s: float,
    ) -> None:
        """`control` is the worker's ordinary client of the shard: it recreates lost consumer
        groups. The blocking read gets a connection of its own, and CLIENT UNBLOCK another, to
        the server `locate(refresh)` answers (refresh: after an error, learn it afresh).
        `errors` are the connection errors retried with backoff. `housekeeping` runs every
        `housekeeping_every_s` (and first at once), between reads, with no slot reserved."""
        self._locate = locate
        self._control = control
        self._consumer = consumer
        self._streams = dict(streams)
        self._nodes_of = {stream: node for node, stream in self._streams.items()}
        self._slots = slots
        self._block_ms = max(block_ms, 1)
        self._start = start
        self._outage = outage
        self._reachable = reachable
        self._errors = errors
        self._housekeeping = housekeeping
        self._housekeeping_every_s = housekeeping_every_s
        self._client: Any = None
        #: sends CLIENT UNBLOCK, to the read's server
        self._waker: Any = None
        #: locate the server afresh at the next connection (after an error)
        self._stale = False
        #: Redis's id of the read connection (CLIENT ID), renewed at each (re)connection
        self._client_id: int | None = None
        #: the nodes the read in flight names (None: no read in flight)
        self._reading: frozenset[str] | None = None
        #: counts reads, so the waker can tell whether the read it wants to wake is still on
        self._generation = 0
        self._wake = asyncio.Event()
        slots.on_freed = self._freed

    async def run(self) -> None:
        """Read until cancelled; also runs the waker. Connection errors are retried."""
        import anyio

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._wake_loop)
                await self._read_loop()
        finally:
            with anyio.CancelScope(shield=True):
                await self._disconnect()

    # -- the read ------------------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._client is None:
            endpoint = await self._locate(self._stale)
            self._stale = False
            # redis-py 8 gives connections a 5 s socket timeout by default: a longer block
            # would end in TimeoutError. Past the block time, no answer means a dead link.
            # (Options in the URL's query still win.)
            self._client = endpoint.open(
                decode_responses=True,
                single_connection_client=True,
                socket_timeout=self._block_ms / 1000 + 5.0,
            )
            self._waker = endpoint.open(decode_responses=True)
        await self._client.initialize()
        connection = self._client.connection
        # The id changes when redis-py reconnects on its own: the callback renews it.
        connection.register_connect_callback(self._on_connect)
        if self._client_id is None:
            self._client_id = int(await self._client.client_id())

    async def _disconnect(self) -> None:
        """Close the read's connections; the next read locates the server afresh."""
        client, waker = self._client, self._waker
        self._client = self._waker = None
        self._client_id = None
        self._stale = True
        for each in (client, waker):
            if each is not None:
                # A dead link has nothing left to close cleanly.
                with contextlib.suppress(Exception):
                    await each.aclose()

    async def _on_connect(self, connection: Any) -> None:
        await connection.send_command("CLIENT", "ID")
        self._client_id = int(await connection.read_response())

    async def _read_loop(self) -> None:
        from redis.exceptions import ResponseError

        slots = self._slots
        delay = 0.1
        # The first read goes out before the first housekeeping: a worker that has just
        # started takes its share of the queue first (takeovers wait one read at most).
        next_housekeeping = 0.0
        first = True
        while True:
            await slots.wait_for_one()
            if not first and time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + self._housekeeping_every_s
                await self._housekeeping()
                continue  # it may have taken slots
            first = False
            ready = slots.ready()
            count = min(slots.free(node) for node in ready)
            for node in ready:
                slots.take(node, count)
            self._generation += 1
            self._reading = frozenset(ready)
            try:
                if self._client is None or self._client_id is None:
                    await self._connect()
                response = await self._client.xreadgroup(
                    GROUP,
                    self._consumer,
                    {self._streams[node]: ">" for node in ready},
                    count=count,
                    block=self._block_ms,
                )
                delay = 0.1
                self._reachable()
            except ResponseError as exc:
                self._give_back(ready, count)
                if isinstance(exc, _moved_errors()):
                    # A cluster's slot moved, or this server is now a replica (a failover):
                    # read from the shard's server as it is now.
                    await self._disconnect()
                    self._outage(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                if not lost_group(exc) and "UNBLOCKED" not in str(exc):
                    raise
                # Redis lost a group (restarted without persistence: NOGROUP), or a stream
                # was deleted while the read waited on it (UNBLOCKED): make them again.
                await self._recreate_groups(ready)
                continue
            except self._errors as exc:
                self._give_back(ready, count)
                await self._disconnect()  # a new connection has a new id, maybe a new server
                self._outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except BaseException:
                self._give_back(ready, count)
                raise
            finally:
                self._reading = None
            self._hand_over(ready, count, response)

    def _hand_over(self, ready: list[str], count: int, response: Any) -> None:
        started = dict.fromkeys(ready, 0)
        items = response.items() if isinstance(response, dict) else (response or ())
        for stream, entries in items:
            node = self._nodes_of[stream]
            # RESP3 answers {stream: [entries]}, RESP2 [[stream, entries]]; both hold pairs.
            for entry_id, fields in entries:
                if fields is None:  # deleted while pending (XDEL after XREADGROUP)
                    continue
                started[node] += 1
                self._start(node, stream, entry_id, fields)
        for node in ready:
            self._slots.give_back(node, count - started[node])

    def _give_back(self, ready: list[str], count: int) -> None:
        for node in ready:
            self._slots.give_back(node, count)

    async def _recreate_groups(self, nodes: list[str]) -> None:
        try:
            for node in nodes:
                await ensure_group(self._control, self._streams[node])
        except self._errors as exc:
            self._outage(exc)
            await asyncio.sleep(0.1)

    # -- waking a blocked read -----------------------------------------------------------------

    def _freed(self, node: str) -> None:
        reading = self._reading
        if reading is not None and node not in reading:
            self._wake.set()

    async def _wake_loop(self) -> None:
        """Wake the blocked read when a node it leaves out got a free slot, so the next read
        names that node (else it would wait for the read's block time)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            generation = self._generation
            while self._needs_waking(generation):
                client_id, waker = self._client_id, self._waker
                if client_id is None or waker is None:
                    break  # (re)connecting: the next read names every ready node
                try:
                    if await waker.client_unblock(client_id):
                        break
                except self._errors as exc:
                    self._outage(exc)
                    break
                # Nothing was blocked: the read is still on its way to Redis. Try again.
                await asyncio.sleep(_WAKE_RETRY_S)

    def _needs_waking(self, generation: int) -> bool:
        reading = self._reading
        if reading is None or generation != self._generation:
            return False  # that read is over; the next one sees the free slots
        return any(node not in reading for node in self._slots.ready())


def _moved_errors() -> tuple[type[BaseException], ...]:
    """Answers that mean the read's connection is on the wrong server now (MOVED, ASK: a
    cluster's slot moved; READONLY: a Sentinel primary became a replica; CLUSTERDOWN,
    TRYAGAIN: a cluster reconfiguring): retried, on the server located afresh."""
    from redis.exceptions import (
        AskError,
        ClusterDownError,
        MasterDownError,
        ReadOnlyError,
        TryAgainError,
    )

    return (AskError, ClusterDownError, MasterDownError, ReadOnlyError, TryAgainError)
