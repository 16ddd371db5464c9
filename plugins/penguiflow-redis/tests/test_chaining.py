"""Operator chaining: a worker runs the next node itself when it serves it, and commits once.

What crosses Redis is counted on the streams themselves: `XINFO STREAM`'s `entries-added`
says how many entries were ever written to a node's stream, and `XINFO GROUPS`'
`entries-read` how many the workers took (each one is acked by exactly one commit).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain_app import HOPS, Trip, build_chain, build_chain_with_errors, build_fan_out, build_join
from penguiflow_redis import RedisFlow, RedisRuntime
from waiting import until
from workers import WorkerProcesses

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.core import BUDGET_EXCEEDED_TEXT
from penguiflow.errors import ConfigurationError, FlowError
from penguiflow.testing import run_async
from penguiflow.types import WM, FinalAnswer, StreamChunk

HEADERS = Headers(tenant="chaining")
NODES = [f"n{i}" for i in range(HOPS)]


def scoped(url: str, **options: Any) -> str:
    query = "".join(f"&{key}={value}" for key, value in options.items())
    return f"{url}?flow_name=chain-{uuid.uuid4().hex[:10]}{query}"


def trip(n: int, **fields: Any) -> Message:
    return Message(payload=Trip(n=n, **fields), headers=HEADERS)


async def added(client: Any, stream: str) -> int:
    """Entries ever written to `stream` (0 for a stream that does not exist)."""
    if not await client.exists(stream):
        return 0
    return int((await client.xinfo_stream(stream))["entries-added"])


async def read_by_workers(client: Any, stream: str) -> int:
    groups = await client.xinfo_groups(stream)
    return sum(int(group["entries-read"] or 0) for group in groups)


async def fetch_trips(flow: Any, count: int, timeout: float = 30.0) -> list[Any]:
    async def collect() -> list[Any]:
        return [(await flow.fetch()).payload for _ in range(count)]

    return await asyncio.wait_for(collect(), timeout)


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    markers = tmp_path / "markers"
    markers.mkdir()
    pool = WorkerProcesses(redis_url, tmp_path, env={"PF_TEST_MARKERS": str(markers)})
    pool.markers = markers  # type: ignore[attr-defined]
    yield pool
    pool.stop_all()


def _chain_counts(redis_url: str, count: int, **options: Any) -> dict[str, int]:
    """Run `count` messages through the 10-node chain on one embedded worker; how many
    entries each node stream and the reply stream received, and how many `n0` entries the
    workers read."""
    result: dict[str, int] = {}

    async def scenario() -> None:
        flow = build_chain(runtime=RedisRuntime(scoped(redis_url, **options), embedded_workers=1))
        assert isinstance(flow, RedisFlow)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        flow.run()
        try:
            for n in range(count):
                await flow.emit(trip(n))
            trips = await fetch_trips(flow, count)
            assert sorted(t.n for t in trips) == list(range(count))
            assert all([p.split("@")[0] for p in t.path] == NODES for t in trips)
            for node in NODES:
                result[node] = await added(client, f"{flow.namespace}:in:{node}")
            result["reply"] = await added(client, flow._reply)
            result["read n0"] = await read_by_workers(client, f"{flow.namespace}:in:n0")
        finally:
            await flow.stop()
            await client.aclose()

    run_async(scenario, timeout=120)
    return result


def test_a_chain_on_one_worker_commits_once_per_message(redis_url: str) -> None:
    counts = _chain_counts(redis_url, 20)
    # Only the client's emits and the results crossed Redis: n1..n9 ran in-process.
    assert counts == {"n0": 20, **dict.fromkeys(NODES[1:], 0), "reply": 20, "read n0": 20}


def test_chain_false_commits_every_hop(redis_url: str) -> None:
    counts = _chain_counts(redis_url, 10, chain="false")
    assert counts == {**dict.fromkeys(NODES, 10), "reply": 10, "read n0": 10}


def test_commit_after_forces_a_commit_after_the_named_node(redis_url: str) -> None:
    counts = _chain_counts(redis_url, 10, commit_after="n4")
    assert counts["n5"] == 10  # the boundary's outputs cross Redis
    assert [counts[node] for node in NODES if node not in ("n0", "n5")] == [0] * 8


def test_commit_after_names_must_be_nodes() -> None:
    runtime = RedisRuntime("redis://127.0.0.1:6390/0?commit_after=n4,nope")
    assert runtime.settings.commit_after == ("n4", "nope")
    with pytest.raises(ConfigurationError, match=r"commit_after names \['nope'\]"):
        build_chain(runtime=runtime)
    assert RedisRuntime("redis://h/0?chain=false").settings.chain is False
    assert RedisRuntime("redis://h/0", commit_after=["a", "b"]).settings.commit_after == (
        "a",
        "b",
    )
    with pytest.raises(ValueError, match=r"chain='maybe'.*boolean"):
        RedisRuntime("redis://h/0?chain=maybe")


def test_a_chain_split_across_two_workers_crosses_redis_once(workers: WorkerProcesses) -> None:
    url = scoped(workers.url)
    first = workers.start(
        *(arg for node in NODES[:5] for arg in ("--node", node)),
        url=url,
        target="chain_app:build_chain",
    )
    second = workers.start(
        *(arg for node in NODES[5:] for arg in ("--node", node)),
        url=url,
        target="chain_app:build_chain",
    )

    async def scenario() -> None:
        flow = build_chain(runtime=url)
        client = redis.Redis.from_url(workers.url, decode_responses=True)
        flow.run()
        try:
            for n in range(10):
                await flow.emit(trip(n))
            trips = await fetch_trips(flow, 10)
            counts = {node: await added(client, f"{flow.namespace}:in:{node}") for node in NODES}
        finally:
            await flow.stop()
            await client.aclose()
        assert counts == {"n0": 10, "n5": 10, **dict.fromkeys(NODES[1:5] + NODES[6:], 0)}
        expected = [f"{node}@{first.pid}" for node in NODES[:5]]
        expected += [f"{node}@{second.pid}" for node in NODES[5:]]
        assert all(t.path == expected for t in trips)

    run_async(scenario, timeout=120)


def test_a_fan_out_to_local_successors_runs_them_all_and_commits_once(redis_url: str) -> None:
    async def scenario() -> None:
        flow = build_fan_out(runtime=RedisRuntime(scoped(redis_url), embedded_workers=1))
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        flow.run()
        try:
            for n in range(5):
                await flow.emit(trip(n))
            trips = await fetch_trips(flow, 15)
            counts = {
                node: await added(client, f"{flow.namespace}:in:{node}")
                for node in ("split", "a", "b", "c")
            }
            reply = await added(client, flow._reply)
        finally:
            await flow.stop()
            await client.aclose()
        assert sorted((t.n, t.path[-1]) for t in trips) == [
            (n, label) for n in range(5) for label in "abc"
        ]
        assert counts == {"split": 5, "a": 0, "b": 0, "c": 0}
        assert reply == 15

    run_async(scenario, timeout=60)


def test_a_join_k_node_always_crosses_redis(redis_url: str) -> None:
    async def scenario() -> None:
        flow = build_join(runtime=RedisRuntime(scoped(redis_url), embedded_workers=1))
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        flow.run()
        try:
            for n in range(5):
                await flow.emit(trip(n))
            trips = await fetch_trips(flow, 5)
            counts = {
                node: await added(client, f"{flow.namespace}:in:{node}")
                for node in ("split", "a", "b", "c", "join", "collect")
            }
        finally:
            await flow.stop()
            await client.aclose()
        assert sorted(t.n for t in trips) == list(range(5))
        assert all(t.path == ["a", "b", "c"] for t in trips)
        # The branches ran chained after split; each of their outputs went to the join's
        # stream; what follows the join ran chained again.
        assert counts == {"split": 5, "a": 0, "b": 0, "c": 0, "join": 15, "collect": 0}

    run_async(scenario, timeout=60)


def test_a_node_failing_inside_a_chain_retries_then_reaches_the_client(redis_url: str) -> None:
    async def scenario() -> None:
        runtime = RedisRuntime(scoped(redis_url), embedded_workers=1)
        flow = build_chain_with_errors(runtime=runtime)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        flow.run()
        try:
            await flow.emit(trip(1, fail=2))  # n4 fails twice, its third attempt succeeds
            recovered = (await fetch_trips(flow, 1))[0]
            assert [p.split("@")[0] for p in recovered.path] == NODES
            broken = trip(2, fail=9)  # more failures than max_retries=2
            await flow.emit(broken)
            error = await asyncio.wait_for(flow.fetch(), 30)
            n5 = await added(client, f"{flow.namespace}:in:n5")
        finally:
            await flow.stop()
            await client.aclose()
        assert isinstance(error, FlowError) and error.trace_id == broken.trace_id
        assert error.node_name == "n4" and "n4 fails on attempt 3" in error.message
        assert n5 == 0

    run_async(scenario, timeout=60)


def test_cancel_in_the_middle_of_a_chain_stops_it(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_TEST_MARKERS", str(tmp_path))

    async def scenario() -> None:
        flow = build_chain(runtime=RedisRuntime(scoped(redis_url), embedded_workers=1))
        assert isinstance(flow, RedisFlow)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        n0 = f"{flow.namespace}:in:n0"
        flow.run()
        try:
            slow = trip(1, delay=60)
            await flow.emit(slow)

            async def started() -> bool:
                return (tmp_path / f"started-{slow.trace_id}").exists()

            await until(started, "n4 to start")
            assert await flow.cancel(slow.trace_id) is True

            async def stopped() -> bool:
                cancelled = (tmp_path / f"cancelled-{slow.trace_id}").exists()
                return cancelled and await client.xlen(n0) == 0

            await until(stopped, "the chain to stop and its entry to be acked")
            await flow.emit(trip(2))  # the worker goes on
            assert (await fetch_trips(flow, 1))[0].n == 2
            reply = await added(client, flow._reply)
            pending = await client.xpending(n0, "workers")
        finally:
            await flow.stop()
            await client.aclose()
        assert not (tmp_path / f"n5-{slow.trace_id}").exists()  # nothing after n4 ran
        assert reply == 1  # only the second trace's result was written
        assert pending["pending"] == 0

    run_async(scenario, timeout=60)


async def _streamer(message: Message, ctx: Any) -> Message:
    for word in ("x", "y"):
        await ctx.emit_chunk(parent=message, text=word)
    await ctx.emit_chunk(parent=message, text="", done=True)
    return message.model_copy(update={"payload": FinalAnswer(text="streamed")})


async def _pass(message: Message, ctx: Any) -> Message:
    return message


def test_stream_chunks_of_a_chained_node_reach_the_client(redis_url: str) -> None:
    first = Node(_pass, name="first", policy=NodePolicy(validate="none"))
    streamer = Node(_streamer, name="streamer", policy=NodePolicy(validate="none"))

    async def scenario() -> None:
        flow = create(
            first.to(streamer),
            streamer.to(),
            runtime=RedisRuntime(scoped(redis_url), embedded_workers=1),
        )
        flow.run()
        try:
            message = Message(payload=1, headers=HEADERS)
            await flow.emit(message, trace_id=message.trace_id)
            seen = [
                (await asyncio.wait_for(flow.fetch(trace_id=message.trace_id), 10)).payload
                for _ in range(4)
            ]
        finally:
            await flow.stop()
        chunks = [(p.seq, p.text, p.done) for p in seen if isinstance(p, StreamChunk)]
        assert chunks == [(0, "x", False), (1, "y", False), (2, "", True)]
        assert seen[-1] == FinalAnswer(text="streamed")

    run_async(scenario, timeout=60)


async def _loop(message: Message, ctx: Any) -> Message:
    wm: WM = message.payload
    return message.model_copy(update={"payload": wm.model_copy(update={"hops": wm.hops + 1})})


def test_a_controller_loop_is_committed_every_max_chain_hops(redis_url: str) -> None:
    loop = Node(_loop, name="loop", policy=NodePolicy(validate="none"), allow_cycle=True)

    async def scenario() -> None:
        flow = create(loop.to(loop), runtime=RedisRuntime(scoped(redis_url), embedded_workers=1))
        assert isinstance(flow, RedisFlow)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        flow.run()
        try:
            await flow.emit(Message(payload=WM(query="q", budget_hops=150), headers=HEADERS))
            answer = await asyncio.wait_for(flow.fetch(), 30)
            entries = await added(client, f"{flow.namespace}:in:loop")
        finally:
            await flow.stop()
            await client.aclose()
        assert answer.payload.text == BUDGET_EXCEEDED_TEXT
        # 150 hops: the client's entry, then one commit to the loop's stream every 64 hops.
        assert entries == 3

    run_async(scenario, timeout=60)


def test_sigkilled_worker_in_the_middle_of_chains_loses_nothing(
    workers: WorkerProcesses,
) -> None:
    url = scoped(workers.url, claim_idle_s=1, concurrency=4)
    target = "chain_app:build_chain"
    victim = workers.start(url=url, target=target)
    survivor = workers.start(url=url, target=target)

    async def scenario() -> None:
        flow = build_chain(runtime=url)
        flow.run()
        try:
            for n in range(24):
                await flow.emit(trip(n, delay=0.3))  # n4 sleeps: chains are mid-way
            trips = await fetch_trips(flow, 3)
            victim.send_signal(signal.SIGKILL)  # it holds up to 4 chains in progress
            victim.wait()
            trips += await fetch_trips(flow, 21, timeout=60)
            with pytest.raises(TimeoutError):  # past claim_idle_s: a duplicate shows now
                extra = await asyncio.wait_for(flow.fetch(), 2.5)
                pytest.fail(f"unexpected extra result {extra!r}")
        finally:
            await flow.stop()
        assert sorted(t.n for t in trips) == list(range(24))
        for t in trips:  # every chain ran whole, on one process (re-run from n0 if it died)
            assert [p.split("@")[0] for p in t.path] == NODES
            assert len({p.split("@")[1] for p in t.path}) == 1
        assert any(t.path[0].endswith(f"@{survivor.pid}") for t in trips)

    run_async(scenario, timeout=120)
