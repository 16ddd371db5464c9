"""The scenario of the wake tests (`test_idle.py` on one server, `test_runtime_cluster.py` on a
cluster): a blocked read must be woken when a node it left out gets a free slot again."""

from __future__ import annotations

import asyncio

from penguiflow_redis import RedisRuntime
from sharding import scoped

from penguiflow import Headers, Message, Node, NodePolicy, create

HEADERS = Headers(tenant="wake")


async def a_full_node_is_read_again_at_once(url: str) -> None:
    """`slow` (one slot) then `after`, on an embedded worker whose reads block for 30 s.

    With its slot busy, `slow` is left out of the read, which then blocks on `after`'s stream
    alone; when `slow` finishes, the read must be woken so the second message is read at
    once; otherwise the fetch times out after 10 s. Both messages share a trace, so on a
    cluster they share a shard, its reader and the master that must receive the wake."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(message: Message, ctx: object) -> Message | None:
        started.set()
        await release.wait()
        # The first message ends here: were it sent on to `after`, its arrival would end the
        # blocked read (on `after`'s stream) by itself, and the wake would go untested.
        return None if message.payload == 1 else message

    async def after(message: Message, ctx: object) -> Message:
        return message

    first = Node(slow, name="slow", policy=NodePolicy(validate="none"))
    second = Node(after, name="after", policy=NodePolicy(validate="none"))
    runtime = RedisRuntime(scoped(url), embedded_workers=1, concurrency=1, block_s=30, chain=False)
    flow = create(first.to(second), second.to(), runtime=runtime)
    flow.run()
    try:
        await flow.emit(Message(payload=1, headers=HEADERS, trace_id="wake-trace"))
        await asyncio.wait_for(started.wait(), 20)  # slow's one slot is busy
        await flow.emit(Message(payload=2, headers=HEADERS, trace_id="wake-trace"))
        release.set()
        result = await asyncio.wait_for(flow.fetch(), 10)
    finally:
        await flow.stop()
    assert result.payload == 2
