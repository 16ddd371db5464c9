"""Tools that can only be called as MCP tasks (`execution.taskSupport: "required"`, the
reference server's `simulate-research-query`): the SDK in use cannot call tools as tasks, so
they are left out of the catalog with a log line naming them, and calling one directly raises
an error saying why. No tool is listed but uncallable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from penguiflow_mcp import MCPConnector, MCPServerConfig, MCPToolError

TASK_TOOL = "simulate-research-query"


def test_task_only_tools_are_left_out_and_refused(
    everything: Callable[..., MCPServerConfig], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            listed = {tool.name: tool for tool in await connector.list_tools()}
            assert listed[TASK_TOOL].task_support == "required"
            specs = {spec.name for spec in await connector.tool_specs()}
            assert f"everything.{TASK_TOOL}" not in specs
            assert "everything.echo" in specs
            with pytest.raises(MCPToolError) as raised:
                await connector.call_tool(TASK_TOOL, {"topic": "penguins"})
            text = str(raised.value)
            assert "'everything'" in text and TASK_TOOL in text
            assert "taskSupport: required" in text
            # Every tool in the catalog is callable: one that is not a task tool answers.
            assert "hi" in (await connector.call_tool("echo", {"message": "hi"})).text

    with caplog.at_level(logging.INFO, logger="penguiflow.mcp"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "left out of the catalog" in r.getMessage()]
    assert lines and TASK_TOOL in lines[0]
