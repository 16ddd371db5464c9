"""Shared helpers for the conformance suites: each test runs its own event loop, so the suites
work in any project, whether or not it uses pytest-asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..resources import aclose_resource

__all__ = ["close_quietly", "run_async", "run_with_resource"]

T = TypeVar("T")


def run_async(scenario: Callable[[], Awaitable[T]], *, timeout: float = 30.0) -> T:
    """Run one async scenario to completion with a timeout, so a hang fails instead of stalls."""

    async def bounded() -> Any:
        return await asyncio.wait_for(scenario(), timeout)

    result: T = asyncio.run(bounded())
    return result


async def close_quietly(resource: object) -> None:
    """Close the resource the way its type allows (`aclose()`, else an awaited `close()`)."""
    await aclose_resource(resource)


def run_with_resource(
    make: Callable[[], Awaitable[T]],
    close: Callable[[T], Awaitable[None]],
    scenario: Callable[[T], Awaitable[None]],
) -> None:
    """Make a resource, run `scenario` with it, and always close it; in a fresh event loop."""

    async def wrapped() -> None:
        resource = await make()
        try:
            await scenario(resource)
        finally:
            await close(resource)

    run_async(wrapped)
