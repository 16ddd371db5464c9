"""Checking that nothing was left running: structured concurrency, asserted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Any

__all__ = ["leftover_tasks"]


async def leftover_tasks(before: Collection[asyncio.Task[Any]], within: float = 10.0) -> set[Any]:
    """Tasks started since `before` (a snapshot of `asyncio.all_tasks()`) that are still
    pending, polled until there are none or `within` seconds have passed (a cancelled task may
    need a few loop turns to end). The caller's own task is never counted.

        before = asyncio.all_tasks()
        async with MyConnector(...) as connector:
            await connector.call_tool(...)
        assert await leftover_tasks(before) == set()
    """
    deadline = time.monotonic() + within
    current = asyncio.current_task()
    while True:
        left = {
            task
            for task in asyncio.all_tasks()
            if task not in before and task is not current and not task.done()
        }
        if not left or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.01)
