"""Waiting on polled state with a deadline, for the runtime tests (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    within: float = 20.0,
    every: float = 0.02,
) -> None:
    """Poll `condition` (a plain or an async callable) every `every` seconds until it holds;
    `AssertionError` naming `what` if it does not within `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)
