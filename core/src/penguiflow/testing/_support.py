"""Shared helpers for the conformance suites: each test runs its own event loop, so the suites
work in any project, whether or not it uses pytest-asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["run_async"]

T = TypeVar("T")


def run_async(scenario: Callable[[], Awaitable[T]], *, timeout: float = 30.0) -> T:
    """Run one async scenario to completion with a timeout, so a hang fails instead of stalls."""

    async def bounded() -> Any:
        return await asyncio.wait_for(scenario(), timeout)

    result: T = asyncio.run(bounded())
    return result
