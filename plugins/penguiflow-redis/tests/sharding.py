"""Helpers of the shard tests: the `shard_app` flow run by a client against worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from penguiflow_redis import RedisRuntime, RedisRuntimeUnavailable
from shard_app import Job, build
from workers import WorkerProcesses

from penguiflow import Headers, Message
from penguiflow.runtime import FlowDefinition

HEADERS = Headers(tenant="shards")
NODES = ("split", "a", "b", "c", "join", "collect")


def scoped(url: str, **options: Any) -> str:
    """`url` with a flow name of its own (and `options`) in its query."""
    query = "".join(f"&{key}={value}" for key, value in options.items())
    return f"{url}?flow_name=shards-{uuid.uuid4().hex[:10]}{query}"


def definition(url: str) -> FlowDefinition:
    flow: Any = build(url)
    found: FlowDefinition = flow.definition
    return found


def expected(n: int) -> str:
    return f"{n}:a,b,c"


async def emit_jobs(
    flow: Any,
    numbers: Iterable[int],
    *,
    delay: float = 0.0,
    retry_within: float = 0.0,
    unavailable: list[int] | None = None,
) -> None:
    """Emit job n as trace `t<n>`; with `retry_within`, an emit that raised
    `RedisRuntimeUnavailable` is emitted again (what the documentation tells callers to do)
    until that many seconds have passed, each such n recorded in `unavailable`."""
    for n in numbers:
        message = Message(payload=Job(n=n, delay=delay), headers=HEADERS)
        deadline = time.monotonic() + retry_within
        while True:
            try:
                await flow.emit(message, trace_id=f"t{n}")
                break
            except RedisRuntimeUnavailable:
                if time.monotonic() > deadline:
                    raise
                if unavailable is not None:
                    unavailable.append(n)
                await asyncio.sleep(0.1)


async def emit_during(
    flow: Any,
    disruption: asyncio.Future[Any],
    *,
    first: int,
    unavailable: list[int],
    delay: float = 0.05,
    after: int = 10,
) -> list[int]:
    """Emit jobs `first`, `first + 1`... one after another while `disruption` runs (a
    restart, a failover), then `after` more; emits refused meanwhile are emitted again (see
    `emit_jobs`). Returns the numbers emitted."""
    numbers: list[int] = []
    remaining = after
    n = first
    while remaining > 0:
        if disruption.done():
            remaining -= 1
        await emit_jobs(flow, [n], delay=delay, retry_within=60, unavailable=unavailable)
        numbers.append(n)
        n += 1
        await asyncio.sleep(0.02)  # paces the emits (about 50 a second), nothing waits on it
    await disruption  # raises if it failed
    return numbers


async def fetch_answers(
    flow: Any, numbers: Iterable[int], *, within: float = 60.0, into: list[str] | None = None
) -> list[str]:
    """The result of each job's trace (`t<n>`), as texts, also appended to `into` as they
    arrive (a caller keeps them when this times out); raises `TimeoutError` if they do not
    all arrive in time."""
    texts = [] if into is None else into

    async def one(n: int) -> None:
        while True:
            try:
                item = await flow.fetch(trace_id=f"t{n}")
            except RedisRuntimeUnavailable:
                await asyncio.sleep(0.1)  # results stay in Redis: fetch again once it is back
                continue
            texts.append(item.payload.text)
            return

    await asyncio.wait_for(asyncio.gather(*(one(n) for n in numbers)), within)
    return texts


async def check_once_each(url: str, texts: list[str], numbers: Iterable[int]) -> None:
    """Every job answered, rightly, and no result written twice (call before the client
    stops: see `replies_written`)."""
    wanted = [expected(n) for n in numbers]
    assert sorted(texts) == sorted(wanted), sorted(set(texts) ^ set(wanted))
    assert await replies_written(url) == len(wanted)


async def entries_added(url: str, node: str) -> list[int]:
    """Entries ever written to `node`'s stream, per shard, read from the shard's server."""
    runtime = RedisRuntime(url)
    async with runtime.open_connections(decode_responses=True) as connections:
        keys = await runtime.connect(definition(url), connections)
        counts = []
        for index, shard in enumerate(keys):
            counts.append(await _added(connections.for_shard(index), shard.node_stream(node)))
        return counts


async def replies_written(url: str) -> int:
    """Entries ever written to the reply streams of the flow's clients, in every shard (read
    before the client stops: it deletes its reply streams). Each trace of `shard_app` has one
    result: more than the traces means a result was written twice."""
    runtime = RedisRuntime(url)
    async with runtime.open_connections(decode_responses=True) as connections:
        keys = await runtime.connect(definition(url), connections)
        total = 0
        for index, shard in enumerate(keys):
            client = connections.for_shard(index)
            async for stream in client.scan_iter(match=f"{shard.base}:reply:*"):
                total += await _added(client, stream)
        return total


async def _added(client: Any, stream: str) -> int:
    if not await client.exists(stream):
        return 0
    return int((await client.xinfo_stream(stream))["entries-added"])


@contextlib.contextmanager
def shard_workers(url: str, log_dir: Path, count: int = 2) -> Iterator[WorkerProcesses]:
    """`count` `penguiflow worker shard_app:build` processes on `url`, stopped on leaving."""
    pool = WorkerProcesses(url, log_dir)
    try:
        for _ in range(count):
            pool.start(target="shard_app:build")
        yield pool
    finally:
        pool.stop_all()


async def answered_once_through(
    url: str, disruption: Callable[[], object], *, emit_unanswered_again: bool = False
) -> list[int]:
    """Jobs 0..29 emitted, then `disruption` run in a thread (a restart, a failover) while
    more jobs are emitted one after another (those refused emitted again, as documented), and
    10 after it; every job must be answered exactly once. With `emit_unanswered_again`, jobs
    still unanswered after 30 s are emitted again first (what a caller does where the
    guarantee allows a loss: the emit dedup recognises those that survived). Returns the jobs
    whose emits were refused."""
    unavailable: list[int] = []
    async with build(url) as flow:
        numbers = list(range(30))
        await emit_jobs(flow, numbers, delay=0.05)
        running = asyncio.ensure_future(asyncio.to_thread(disruption))
        numbers += await emit_during(flow, running, first=30, unavailable=unavailable)
        answers: list[str] = []
        try:
            await fetch_answers(
                flow, numbers, within=30 if emit_unanswered_again else 120, into=answers
            )
        except TimeoutError:
            if not emit_unanswered_again:
                raise
            answered = {int(text.split(":")[0]) for text in answers}
            lost = [n for n in numbers if n not in answered]
            print(f"emitted again after the disruption: {lost}")
            await emit_jobs(flow, lost)
            await fetch_answers(flow, lost, into=answers)
        await check_once_each(url, answers, numbers)
    return unavailable
