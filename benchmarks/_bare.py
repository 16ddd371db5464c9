"""The physical limit: each workload's shape hand-built on bare `asyncio.Queue` and tasks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


async def _drive(
    inq: asyncio.Queue[Any], outq: asyncio.Queue[Any], items: Sequence[Any], in_flight: int
) -> float:
    """Keep `in_flight` items in the pipeline until all have come out; return seconds."""
    started = time.perf_counter()
    iterator = iter(items)
    outstanding = 0
    for item in iterator:
        await inq.put(item)
        outstanding += 1
        if outstanding >= in_flight:
            break
    for item in iterator:
        await outq.get()
        await inq.put(item)
    for _ in range(outstanding):
        await outq.get()
    return time.perf_counter() - started


async def chain(items: Sequence[Any], *, hops: int, in_flight: int, maxsize: int = 64) -> float:
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue(maxsize) for _ in range(hops + 1)]

    async def stage(qin: asyncio.Queue[Any], qout: asyncio.Queue[Any]) -> None:
        while True:
            await qout.put(await qin.get())

    tasks = [asyncio.create_task(stage(queues[i], queues[i + 1])) for i in range(hops)]
    try:
        return await _drive(queues[0], queues[-1], items, in_flight)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def chain_unbounded(items: Sequence[Any], *, hops: int) -> float:
    """Emit everything, then drain: memory grows with the input (no backpressure)."""
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in range(hops + 1)]

    async def stage(qin: asyncio.Queue[Any], qout: asyncio.Queue[Any]) -> None:
        while True:
            await qout.put(await qin.get())

    tasks = [asyncio.create_task(stage(queues[i], queues[i + 1])) for i in range(hops)]
    started = time.perf_counter()
    for item in items:
        queues[0].put_nowait(item)
    for _ in items:
        await queues[-1].get()
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return elapsed


async def fanout_join(traces: Sequence[Any], *, width: int, in_flight: int) -> float:
    source: asyncio.Queue[Any] = asyncio.Queue(64)
    lanes: list[asyncio.Queue[Any]] = [asyncio.Queue(64) for _ in range(width)]
    joined: asyncio.Queue[Any] = asyncio.Queue(64)
    out: asyncio.Queue[Any] = asyncio.Queue(64)

    async def split() -> None:
        while True:
            item = await source.get()
            for lane in lanes:
                await lane.put(item)

    async def worker(lane: asyncio.Queue[Any]) -> None:
        while True:
            await joined.put(await lane.get())

    async def join() -> None:
        buckets: dict[Any, list[Any]] = {}
        while True:
            item = await joined.get()
            bucket = buckets.setdefault(id(item), [])
            bucket.append(item)
            if len(bucket) == width:
                del buckets[id(item)]
                await out.put(bucket)

    tasks = [asyncio.create_task(split()), asyncio.create_task(join())]
    tasks += [asyncio.create_task(worker(lane)) for lane in lanes]
    try:
        return await _drive(source, out, traces, in_flight)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def controller(
    items: Sequence[Any],
    *,
    step: Callable[[Any], Awaitable[Any]],
    done: Callable[[Any], bool],
    in_flight: int,
) -> float:
    """A self-loop: the same node body (`step`) as the PenguiFlow side, hand-wired."""
    loop_q: asyncio.Queue[Any] = asyncio.Queue(64)
    inq: asyncio.Queue[Any] = asyncio.Queue(64)
    out: asyncio.Queue[Any] = asyncio.Queue(64)

    async def intake() -> None:
        while True:
            await loop_q.put(await inq.get())

    async def loop() -> None:
        while True:
            result = await step(await loop_q.get())
            await (out.put(result) if done(result) else loop_q.put(result))

    tasks = [asyncio.create_task(intake()), asyncio.create_task(loop())]
    try:
        return await _drive(inq, out, items, in_flight)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
