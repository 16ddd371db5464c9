"""A stdio server's stderr: logged per server, and quoted when the server dies at start."""

from __future__ import annotations

import logging
import sys

import anyio
import pytest
from conftest import HERE
from penguiflow_mcp import MCPConnectionError, MCPConnector, MCPServerConfig

from penguiflow.testing import run_async


def dying() -> MCPConnector:
    return MCPConnector(
        MCPServerConfig(
            name="demo", command=sys.executable, args=[str(HERE / "servers" / "dies_at_start.py")]
        )
    )


async def list_then_close(connector: MCPConnector) -> None:
    try:
        await connector.list_tools()
    finally:
        await connector.aclose()


def test_a_server_that_dies_at_start_is_explained_by_its_stderr() -> None:
    with pytest.raises(MCPConnectionError) as raised:
        run_async(lambda: list_then_close(dying()), timeout=30)
    text = str(raised.value)
    assert "MCP server 'demo' could not be started" in text
    assert "its stderr ended with:" in text
    assert "fatal: DEMO_API_KEY is not set; export it and try again" in text
    assert "starting the demo server" in text


def test_stderr_lines_go_to_a_logger_named_after_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="penguiflow.mcp.server.demo"),
        pytest.raises(MCPConnectionError),
    ):
        run_async(lambda: list_then_close(dying()), timeout=30)
    lines = [r.getMessage() for r in caplog.records if r.name == "penguiflow.mcp.server.demo"]
    assert lines == [
        "starting the demo server",
        "fatal: DEMO_API_KEY is not set; export it and try again",
    ]


def test_a_serving_server_logs_its_stderr_line_by_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = MCPConnector(
        MCPServerConfig(
            name="chatty", command=sys.executable, args=[str(HERE / "servers" / "chatty_stdio.py")]
        )
    )

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "penguiflow.mcp.server.chatty"]

    async def scenario() -> None:
        async with connector:
            assert (await connector.call_tool("hello", {"name": "ada"})).text == "hello ada"
            # The lines are read by another thread: poll for them, with a deadline.
            with anyio.fail_after(20):
                while "chatty: greeting ada" not in logged():
                    await anyio.sleep(0.01)

    with caplog.at_level(logging.INFO, logger="penguiflow.mcp.server.chatty"):
        run_async(scenario, timeout=40)
    assert logged()[:2] == ["chatty: ready", "chatty: greeting ada"]
