"""Keeping a planner's catalog in step with an MCP server's tool list
(`MCPConnector.sync_tools`)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import anyio

from penguiflow.errors import describe_exception
from penguiflow.resources import AsyncResource

if TYPE_CHECKING:
    from .connector import MCPConnector

__all__ = ["ToolSync"]

logger = logging.getLogger("penguiflow.mcp")


class ToolSync(AsyncResource):
    """Replaces the connector's tools (`<server>.*`) in a planner each time the server says
    its tool list changed (`planner.replace_tools`). The listing is done in a task of its
    own, since the change callback runs in the session's notification path, which must not
    wait on the server. `aclose()` (idempotent; `async with`) stops it; the planner keeps
    the tools it has. `generation` counts the catalogs applied; `wait_for(n)` waits until
    the n-th is."""

    def __init__(self, connector: MCPConnector, planner: Any) -> None:
        self.connector = connector
        self.planner = planner
        self.generation = 0
        #: the error of the last refresh that failed (logged; the planner kept its tools)
        self.failure: Exception | None = None
        self._changed = anyio.Event()
        self._applied = anyio.Event()
        self._remove = connector.on_tools_changed(lambda _: self._changed.set())
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Apply the current tool list, then follow changes in a task."""
        await self._refresh()
        self._task = asyncio.get_running_loop().create_task(
            self._follow(), name=f"penguiflow-mcp:{self.connector.name}:sync-tools"
        )

    async def wait_for(self, generation: int) -> None:
        """Return once `generation` catalogs have been applied (the first is the one
        `sync_tools` applies before returning)."""
        while self.generation < generation:
            await self._applied.wait()

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            await self._refresh()

    async def _refresh(self) -> None:
        try:
            specs = await self.connector.tool_specs()
            self.planner.replace_tools(self.connector.name, specs)
        except Exception as exc:
            self.failure = exc
            logger.warning(
                "MCP server %r: the planner's tools could not be updated (it keeps the ones "
                "it has): %s",
                self.connector.name,
                describe_exception(exc),
            )
            return
        self.generation += 1
        applied, self._applied = self._applied, anyio.Event()
        applied.set()

    async def aclose(self) -> None:
        self._remove()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([task])
