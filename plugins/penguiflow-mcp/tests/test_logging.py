"""Server log messages (`notifications/message`) go to Python logging, on the logger the
server's stderr uses (`penguiflow.mcp.server.<name>`), MCP levels mapped onto Python's; the
config's `log_level` is sent to the server (logging/setLevel)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from penguiflow_mcp import MCPConnector, MCPServerConfig, load_config
from penguiflow_mcp._notifications import MCP_LOG_LEVELS, log_handler


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[Collect]:
    handler = Collect()
    log = logging.getLogger("penguiflow.mcp.server.everything")
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old)


async def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # polling a state with a deadline, not synchronisation


def mcp_records(handler: Collect) -> list[logging.LogRecord]:
    return [r for r in handler.records if hasattr(r, "mcp_level")]


def test_server_log_messages_reach_python_logging(
    everything: Callable[..., MCPServerConfig], server_log: Collect
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:  # log_level "info" by default
            # The server acknowledges a subscription with an info-level log message.
            uri = "demo://resource/static/document/architecture.md"
            subscription = await connector.subscribe_resource(uri)
            await wait_for(lambda: bool(mcp_records(server_log)), "the server's log message")
            await subscription.aclose()

    asyncio.run(scenario())
    record = mcp_records(server_log)[0]
    assert record.levelno == logging.INFO
    assert record.mcp_level == "info"  # type: ignore[attr-defined]
    assert record.mcp_server == "everything"  # type: ignore[attr-defined]
    assert "Received Subscribe Resource request" in record.getMessage()


def test_simulated_logging_at_debug_level(
    everything: Callable[..., MCPServerConfig], server_log: Collect
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything(log_level="debug")) as connector:
            await connector.call_tool("toggle-simulated-logging", {})
            # It sends one message at once, of a random level (any level passes "debug").
            await wait_for(lambda: bool(mcp_records(server_log)), "a simulated log message")
            await connector.call_tool("toggle-simulated-logging", {})

    asyncio.run(scenario())
    for record in mcp_records(server_log):
        assert record.levelno == MCP_LOG_LEVELS[record.mcp_level]  # type: ignore[attr-defined]
        assert "-level message" in record.getMessage() or "level-message" in record.getMessage()


def test_levels_map_onto_pythons_and_structured_data_is_json() -> None:
    handler = Collect()
    log = logging.getLogger("penguiflow.mcp.server.mapped")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        on_log = log_handler(log, "mapped")
        for level in MCP_LOG_LEVELS:
            asyncio.run(on_log(SimpleNamespace(level=level, logger="db", data={"level": level})))
    finally:
        log.removeHandler(handler)
    assert [r.levelname for r in handler.records] == [
        "DEBUG", "INFO", "INFO", "WARNING", "ERROR", "CRITICAL", "CRITICAL", "CRITICAL",
    ]  # fmt: skip
    assert handler.records[0].getMessage() == '[db] {"level": "debug"}'


def test_log_level_is_a_config_field_checked_on_load() -> None:
    (server,) = load_config({"servers": [{"name": "s", "command": "x", "log_level": "warning"}]})
    assert server.log_level == "warning"
    assert MCPServerConfig(name="s", command="x").log_level == "info"
    with pytest.raises(ValueError, match="log_level"):
        load_config({"servers": [{"name": "s", "command": "x", "log_level": "loud"}]})
