"""One blocking read per worker: an idle worker stays quiet, a busy one is woken when needed.

Commands are counted with `INFO commandstats` on a Redis server of the test's own, so nothing
else talks to it.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from waiting import until
from waking import a_full_node_is_read_again_at_once
from workers import RedisServer, WorkerProcesses

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.testing import run_async

HEADERS = Headers(tenant="idle")
NODES = [f"n{i}" for i in range(10)]
#: the measurement window: what an idle worker does in it is counted
WINDOW_S = 5.0


async def command_counts(client: Any) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if name.startswith("cmdstat_")
    }


def test_an_idle_worker_serving_ten_nodes_makes_about_one_command_a_second(
    own_server: RedisServer, tmp_path: Path
) -> None:
    """Regression: each served node had a reader of its own, so an idle worker serving ten
    nodes made ten blocking reads a second (and woke ten times)."""
    workers = WorkerProcesses(own_server.url, tmp_path)
    url = f"{own_server.url}?flow_name=idle-{uuid.uuid4().hex[:10]}"
    try:
        workers.start(url=url, target="chain_app:build_chain")

        async def scenario() -> dict[str, int]:
            client = redis.Redis.from_url(own_server.url, decode_responses=True)
            try:

                async def started() -> bool:
                    # Past start-up: the first read, then the first round of takeovers (one
                    # XPENDING and one XINFO CONSUMERS per stream), which comes again after
                    # claim_idle_s / 2 = 15 s, after the window.
                    counts = await command_counts(client)
                    return counts.get("xreadgroup", 0) >= 1 and counts.get(
                        "xinfo|consumers", 0
                    ) >= len(NODES)

                await until(started, "the worker's first read and takeovers")
                await client.config_resetstat()
                await asyncio.sleep(WINDOW_S)  # the window measured, not a synchronisation
                counts = await command_counts(client)
            finally:
                await client.aclose()
            for own in ("info", "config|resetstat", "config"):
                counts.pop(own, None)
            return counts

        counts = run_async(scenario, timeout=60)
    finally:
        workers.stop_all()
    # One read a second (block_s=1) across all ten streams, a heartbeat now and then; the
    # claims of dead workers' entries come every claim_idle_s / 2 = 15 s.
    assert counts.get("xreadgroup", 0) <= WINDOW_S + 2, counts
    assert sum(counts.values()) <= 2 * WINDOW_S + 4, counts


def test_a_full_node_gets_its_next_entry_without_waiting_for_the_block(redis_url: str) -> None:
    """Regression (of the test too: it passed with the wake turned off, because the first
    message's arrival at the next node ended the blocked read by itself)."""
    run_async(lambda: a_full_node_is_read_again_at_once(redis_url), timeout=60)


def test_a_stream_deleted_under_the_read_is_made_again(redis_url: str) -> None:
    """Regression: Redis answers a read blocked on a stream that is deleted with an
    UNBLOCKED error, which stopped the worker; it now recreates the stream's group."""

    async def echo(message: Message, ctx: Any) -> Message:
        return message

    node = Node(echo, name="echo", policy=NodePolicy(validate="none"))
    from penguiflow_redis import RedisRuntime

    async def scenario() -> None:
        url = f"{redis_url}?flow_name=deleted-{uuid.uuid4().hex[:10]}"
        flow = create(node.to(), runtime=RedisRuntime(url, embedded_workers=1))
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        stream = f"{flow.namespace}:in:echo"
        flow.run()
        try:
            await flow.emit(Message(payload=1, headers=HEADERS))
            assert (await asyncio.wait_for(flow.fetch(), 10)).payload == 1
            await client.delete(stream)

            async def remade() -> bool:
                return bool(await client.exists(stream)) and bool(await client.xinfo_groups(stream))

            await until(remade, "the deleted stream's group to be made again")
            await flow.emit(Message(payload=2, headers=HEADERS))
            assert (await asyncio.wait_for(flow.fetch(), 10)).payload == 2
        finally:
            await flow.stop()
            await client.aclose()

    run_async(scenario, timeout=60)
