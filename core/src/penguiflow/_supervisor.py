"""A task group that a synchronous `run()` can start and an async `stop()` can end.

PenguiFlow's `run()` is synchronous (PenguiFlow's API), so it cannot enter an `async with`
block itself. The supervisor task enters the anyio task group on its behalf; every long-lived
task of the run is a child of that group, so none outlives the run, and a child that dies is
reported at once instead of vanishing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

__all__ = ["Supervisor"]

Job = tuple[str, Callable[[], Coroutine[Any, Any, Any]]]


class Supervisor:
    """Owns the tasks of one run (see module doc)."""

    __slots__ = ("_on_crash", "_scope", "crash", "task")

    def __init__(self, on_crash: Callable[[BaseException], None]) -> None:
        self._on_crash = on_crash
        self._scope: Any = None
        self.task: asyncio.Task[None] | None = None
        #: the first exception a child died of during the current run
        self.crash: BaseException | None = None

    def start(self, jobs: Sequence[Job], *, name: str) -> asyncio.Task[None]:
        """Start `jobs` (name, coroutine function) as children of a new task group."""
        self.crash = None
        self.task = asyncio.get_running_loop().create_task(self._supervise(jobs), name=name)
        return self.task

    async def _supervise(self, jobs: Sequence[Job]) -> None:
        import anyio

        try:
            async with anyio.create_task_group() as group:
                self._scope = group.cancel_scope
                for job_name, job in jobs:
                    group.start_soon(job, name=job_name)
        except Exception as exc:
            # The group cancelled the other children already; report the first cause.
            crash = exc.exceptions[0] if isinstance(exc, ExceptionGroup) else exc
            self.crash = crash
            self._on_crash(crash)

    async def stop(self) -> BaseException | None:
        """Cancel every child and wait for them; the exception a child died of, if any."""
        scope, self._scope = self._scope, None
        task, self.task = self.task, None
        if task is None:
            return None
        if scope is not None:
            scope.cancel()
        else:  # stopped before the group started: no child exists yet
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        crash, self.crash = self.crash, None
        return crash
