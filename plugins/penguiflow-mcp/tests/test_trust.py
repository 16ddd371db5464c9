"""Only the user's configuration may read environment variables: `${VAR}` in a server
declaration is filled when connecting, once; nothing a server sends (tool listings, results)
and nothing a planner sends (arguments) is ever expanded."""

from __future__ import annotations

import pytest
from conftest import HTTPServer
from penguiflow_mcp import MCPConnector, MCPServerConfig

from penguiflow.testing import run_async

SECRET = "do-not-send-0123456789"


def test_configuration_values_are_expanded_once_and_only_in_their_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PF_MCP_TRUST_OUTER", "${PF_MCP_TRUST_SECRET}")
    monkeypatch.setenv("PF_MCP_TRUST_SECRET", SECRET)
    config = MCPServerConfig(
        name="s",
        url="http://127.0.0.1:9/mcp?${PF_MCP_TRUST_SECRET}",
        headers={"X-Outer": "${PF_MCP_TRUST_OUTER}", "X-Direct": "${PF_MCP_TRUST_SECRET}"},
    )
    # A variable's value is not expanded again, whatever it holds.
    assert config.resolved_headers() == {"X-Outer": "${PF_MCP_TRUST_SECRET}", "X-Direct": SECRET}
    # Only headers, tokens and env values are templates; the URL is used as written.
    assert config.url is not None and SECRET not in config.url
    stdio = MCPServerConfig(name="p", command="x", args=["${PF_MCP_TRUST_SECRET}"])
    assert stdio.args == ["${PF_MCP_TRUST_SECRET}"] and stdio.resolved_env() == {}


def test_arguments_and_results_are_never_expanded(
    http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_MCP_TRUST_SECRET", SECRET)
    connector = MCPConnector(
        MCPServerConfig(name="calc", url=http_server.url, bearer_token=http_server.token)
    )

    async def scenario() -> None:
        async with connector:
            # The server echoes the query: what it sends back stays as it sent it.
            answer = await connector.call_tool("search", {"query": "${PF_MCP_TRUST_SECRET}"})
            assert answer.text == "calc notes about ${PF_MCP_TRUST_SECRET}"
            for tool in await connector.list_tools():
                assert SECRET not in tool.description

    run_async(scenario)
