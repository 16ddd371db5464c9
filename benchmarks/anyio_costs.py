"""What anyio's structured concurrency costs against plain asyncio, primitive by primitive.

    python benchmarks/anyio_costs.py [--n 100000] [--repeat 5]

The kernel uses anyio where it buys structure (a task group owning a flow's workers, the
level-triggered cancel scope of a node timeout, shielded event saves) and keeps asyncio where
anyio measures slower on the per-message path (edge queues). Each line compares the two ways
of doing one thing in the same process; `ratio` is anyio's time over asyncio's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import anyio


async def _noop() -> int:
    return 1


async def _timed(n: int, body: Callable[[int], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await body(n)
    return (time.perf_counter() - started) / n * 1e6


async def asyncio_timeout(n: int) -> None:
    for _ in range(n):
        async with asyncio.timeout(10):
            await _noop()


async def anyio_fail_after(n: int) -> None:
    for _ in range(n):
        with anyio.fail_after(10):
            await _noop()


async def anyio_cancel_scope(n: int) -> None:
    """What the node engine uses for `timeout_s`: a bare scope with a deadline."""
    for _ in range(n):
        with anyio.CancelScope(deadline=anyio.current_time() + 10) as scope:
            await _noop()
        if scope.cancelled_caught:
            raise TimeoutError


async def asyncio_shield(n: int) -> None:
    for _ in range(n):
        await asyncio.shield(_noop())


async def anyio_shield(n: int) -> None:
    for _ in range(n):
        with anyio.CancelScope(shield=True):
            await _noop()


async def asyncio_queue(n: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(64)

    async def produce() -> None:
        for item in range(n):
            await queue.put(item)

    async def consume() -> None:
        for _ in range(n):
            await queue.get()

    await asyncio.gather(produce(), consume())


async def anyio_stream(n: int) -> None:
    send, receive = anyio.create_memory_object_stream[int](64)

    async def produce() -> None:
        async with send:
            for item in range(n):
                await send.send(item)

    async def consume() -> None:
        async with receive:
            for _ in range(n):
                await receive.receive()

    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        group.start_soon(consume)


async def asyncio_gather(n: int) -> None:
    for _ in range(n // 8):
        await asyncio.gather(*(_noop() for _ in range(8)))


async def anyio_task_group(n: int) -> None:
    for _ in range(n // 8):
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(_noop)


PAIRS = [
    ("timeout scope per call (anyio.fail_after)", asyncio_timeout, anyio_fail_after),
    (
        "timeout scope per call (bare CancelScope, the engine's)",
        asyncio_timeout,
        anyio_cancel_scope,
    ),
    ("shielded await per call", asyncio_shield, anyio_shield),
    ("queue hand-off per item", asyncio_queue, anyio_stream),
    ("8 concurrent tasks, per task", asyncio_gather, anyio_task_group),
]


async def main(n: int, repeat: int) -> None:
    for label, plain, structured in PAIRS:
        plain_us = min([await _timed(n, plain) for _ in range(repeat)])
        anyio_us = min([await _timed(n, structured) for _ in range(repeat)])
        print(
            json.dumps(
                {
                    "what": label,
                    "asyncio_us": round(plain_us, 3),
                    "anyio_us": round(anyio_us, 3),
                    "ratio": round(anyio_us / plain_us, 2),
                }
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.repeat))
