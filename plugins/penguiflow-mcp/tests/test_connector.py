"""MCPConnector against real MCP servers in separate processes: mcp-server-time over stdio,
and a server of our own over streamable HTTP with a bearer token."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import HERE, HTTPServer
from penguiflow_mcp import (
    MCPConfigError,
    MCPConnectionError,
    MCPConnector,
    MCPServerConfig,
    MCPToolError,
    catalog_from,
    load_config,
)

from penguiflow.connectors import ToolResult, namespaced_tools
from penguiflow.testing import run_async


def http(server: HTTPServer, **options: Any) -> MCPConnector:
    options.setdefault("bearer_token", server.token)
    return MCPConnector(
        MCPServerConfig(name=options.pop("name", "calc"), url=server.url, **options)
    )


async def using(connector: MCPConnector, scenario: Any) -> Any:
    try:
        return await scenario(connector)
    finally:
        await connector.aclose()


def test_time_server_over_stdio(time_server_command: str) -> None:
    connector = MCPConnector(MCPServerConfig(name="time", command=time_server_command))

    async def scenario(c: MCPConnector) -> None:
        specs = await c.tool_specs()
        names = sorted(s.name for s in specs)
        assert names == ["time.convert_time", "time.get_current_time"]
        current = next(s for s in specs if s.name == "time.get_current_time")
        # mcp-server-time marks its tools readOnlyHint: they become side_effects="read"
        assert current.args_schema["required"] == ["timezone"] and current.side_effects == "read"
        assert current.call is not None
        result = (await current.call({"timezone": "UTC"})).structured
        assert result["timezone"] == "UTC" and "datetime" in result
        again = await c.call_tool("get_current_time", {"timezone": "Europe/Paris"})  # same session
        assert again.structured["timezone"] == "Europe/Paris"

    run_async(lambda: using(connector, scenario))


def test_http_server_with_bearer_token(http_server: HTTPServer) -> None:
    async def scenario(c: MCPConnector) -> None:
        assert (await c.call_tool("add", {"a": 2, "b": 3})).structured == {"sum": 5}
        assert await c.call_tool("search", {"query": "pi"}) == ToolResult(
            text="calc notes about pi"
        )

    run_async(lambda: using(http(http_server), scenario))


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_missing_or_wrong_token_is_rejected(http_server: HTTPServer, token: str | None) -> None:
    connector = http(http_server, bearer_token=token)
    with pytest.raises(
        MCPConnectionError,
        match=r"MCP server 'calc' could not be started or reached.*HTTP 401.*check bearer_token",
    ):
        run_async(lambda: using(connector, lambda c: c.list_tools()))


def test_large_results_are_kept_out_of_the_prompt(http_server: HTTPServer) -> None:
    async def scenario(c: MCPConnector) -> None:
        blob = await c.call_tool("blob", {"size": 20_000})
        assert blob.text == "" and blob.structured is None
        (reference,) = blob.references
        assert reference.size == 20_000 and reference.mime_type == "text/plain"
        assert reference.ref.startswith("mcp://calc/") and reference.preview == "x" * 200
        mime, content = c.artifact(reference.ref)
        assert mime == "text/plain" and content == "x" * 20_000
        image = await c.call_tool("picture", {})  # binary: never inline
        (picture,) = image.references
        assert picture.mime_type == "image/png" and picture.preview is None
        assert c.artifact(picture.ref)[1][:4] == bytes.fromhex("89504e47")

    run_async(lambda: using(http(http_server, max_inline_chars=1000), scenario))


def test_a_tool_error_and_a_schema_violation(http_server: HTTPServer) -> None:
    async def scenario(c: MCPConnector) -> None:
        with pytest.raises(
            MCPToolError, match=r"calc\.fail reported an error: Error executing tool fail"
        ):
            await c.call_tool("fail", {"reason": "bad input"})
        with pytest.raises(
            MCPToolError, match=r"do not match its schema \(not sent\): b: field required"
        ):
            await c.call_tool("add", {"a": 1})
        with pytest.raises(
            MCPToolError,
            match="has no tool 'mul'; it has: add, archive, blob, book, crash, fail, link, notes, "
            "picture, search, slow",
        ):
            await c.call_tool("mul", {})

    run_async(lambda: using(http(http_server), scenario))


def test_server_crash_mid_call_then_reconnect(http_server: HTTPServer) -> None:
    async def scenario(c: MCPConnector) -> None:
        assert (await c.call_tool("add", {"a": 1, "b": 1})).structured == {"sum": 2}
        with pytest.raises(MCPConnectionError, match="MCP server 'calc' crashed or dropped"):
            await c.call_tool("crash", {})
        http_server.proc.wait(timeout=10)
        http_server.stop()
        http_server.start()  # the server comes back: the connector reconnects by itself
        assert (await c.call_tool("add", {"a": 2, "b": 2})).structured == {"sum": 4}

    run_async(lambda: using(http(http_server, retries=1), scenario), timeout=60)


def test_a_server_that_never_starts_or_answers_garbage(
    tmp_path: Path, time_server_command: str
) -> None:
    missing = MCPConnector(MCPServerConfig(name="ghost", command=str(tmp_path / "no-such-server")))
    with pytest.raises(MCPConnectionError, match="MCP server 'ghost' could not be started"):
        run_async(lambda: using(missing, lambda c: c.list_tools()))

    async def rest_of_catalog() -> list[Any]:
        try:
            return await catalog_from([missing, working])
        finally:
            await working.aclose()

    working = MCPConnector(MCPServerConfig(name="time", command=time_server_command))
    names = [spec.name for spec in run_async(rest_of_catalog)]  # type: ignore[attr-defined]
    assert names == ["time.get_current_time", "time.convert_time"]
    garbage = MCPConnector(
        MCPServerConfig(
            name="noise",
            command=sys.executable,
            args=[str(HERE / "servers" / "garbage.py")],
            connect_timeout_s=3,
        )
    )
    with pytest.raises(MCPConnectionError, match="MCP server 'noise'"):
        run_async(lambda: using(garbage, lambda c: c.list_tools()), timeout=20)


def test_name_collisions_are_resolved_by_namespacing(
    http_server: HTTPServer, time_server_command: str
) -> None:
    other_port_server = http_server  # same server, declared twice under two names
    first = http(other_port_server, name="calc")
    second = http(other_port_server, name="notes")
    time = MCPConnector(MCPServerConfig(name="time", command=time_server_command))

    async def scenario() -> None:
        try:
            specs = await catalog_from([first, second, time])
            names = [s.name for s in specs]
            assert (
                "calc.search" in names
                and "notes.search" in names
                and "time.get_current_time" in names
            )
            tools = await namespaced_tools([first, second])
            found = await tools["notes.search"].call({"query": "x"})
            assert found.text == "calc notes about x"
        finally:
            for connector in (first, second, time):
                await connector.aclose()

    run_async(scenario, timeout=60)


def test_another_event_loop_gets_a_new_session(http_server: HTTPServer) -> None:
    connector = http(http_server)

    async def call() -> Any:
        return (await connector.call_tool("add", {"a": 1, "b": 2})).structured

    assert run_async(call) == {"sum": 3}  # run_async uses a fresh loop each time
    assert run_async(call) == {"sum": 3}
    run_async(connector.aclose)


def test_config_files_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALC_TOKEN", "from-env")
    toml = tmp_path / "mcp.toml"
    toml.write_text(
        '[servers.calc]\nurl = "http://127.0.0.1:9/mcp"\nbearer_token = "${CALC_TOKEN}"\n'
        '[servers.time]\ncommand = "mcp-server-time"\n'
    )
    calc, time = load_config(toml)
    assert calc.transport == "http" and calc.resolved_headers() == {
        "Authorization": "Bearer from-env"
    }
    assert time.transport == "stdio"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"servers": [{"name": "x", "command": "a", "url": "http://h"}]}))
    with pytest.raises(MCPConfigError, match=r"server x: .*exactly one of command="):
        load_config(bad)
    with pytest.raises(MCPConfigError, match=r"declared twice"):
        load_config({"servers": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]})
    keyed = MCPServerConfig(name="k", url="http://h/mcp", api_key="abc", api_key_header="X-Key")
    assert keyed.resolved_headers() == {"X-Key": "abc"}
    with pytest.raises(MCPConfigError, match="MISSING_VAR"):
        MCPServerConfig(
            name="m", url="http://h/mcp", bearer_token="${MISSING_VAR}"
        ).resolved_headers()


def test_the_plugin_hook_contributes_configured_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from penguiflow.plugins import PluginSettings, collect_connectors, load_hooks

    config_file = tmp_path / "servers.json"
    config_file.write_text(json.dumps({"servers": [{"name": "fromfile", "command": "x"}]}))
    monkeypatch.setenv("PENGUIFLOW_MCP_CONFIG", str(config_file))
    host = load_hooks(PluginSettings())
    connectors = collect_connectors(
        host, config={"mcp": {"servers": [{"name": "incode", "url": "http://127.0.0.1:9/mcp"}]}}
    )
    names = sorted(c.name for c in connectors if isinstance(c, MCPConnector))
    assert names == ["fromfile", "incode"]


def test_a_planner_calls_an_mcp_tool_end_to_end(http_server: HTTPServer) -> None:
    from penguiflow_planner import PlannerFinish, ReactPlanner

    from penguiflow.llm import ScriptedLLMClient

    connector = http(http_server)

    async def scenario() -> None:
        try:
            catalog = await catalog_from([connector])
            llm = ScriptedLLMClient(
                [
                    json.dumps({"next_node": "calc.add", "args": {"a": 20, "b": 22}}),
                    json.dumps({"next_node": None, "args": {"answer": "42"}}),
                ]
            )
            result = await ReactPlanner(llm_client=llm, catalog=catalog).run("What is 20 + 22?")
        finally:
            await connector.aclose()
        assert isinstance(result, PlannerFinish) and result.payload["raw_answer"] == "42"
        step = result.metadata["steps"][0]
        assert step["action"]["next_node"] == "calc.add"
        # The model sees the ToolResult's JSON, empty fields left out.
        assert step["observation"] == {"structured": {"sum": 42}}
        prompt = llm.calls[0].messages[0].content
        assert "- calc.add: " in prompt  # listed as a tool
        # ...with its result described as a ToolResult whose `structured` is add's own schema
        listing = prompt[prompt.index("- calc.add: ") :].split("\n- ", 1)[0]
        assert '"structured":{"additionalProperties"' in listing.replace(" ", "")

    run_async(scenario)


def test_stopping_a_flow_closes_only_the_sessions_it_used(
    http_server: HTTPServer, time_server_command: str
) -> None:
    """Two flows, each calling a server of its own from a node, and a session opened outside
    any flow: stopping one flow closes its session only. (Regression: any flow's stop closed
    every configured server's session, including those other running flows were using.)"""
    from penguiflow import Headers, Message, Node, NodePolicy, create
    from penguiflow.plugins import PluginSettings, collect_connectors, load_hooks, reset_hooks

    host = load_hooks(PluginSettings())
    servers = [
        {"name": "calc", "url": http_server.url, "bearer_token": http_server.token},
        {"name": "time", "command": time_server_command},
    ]
    found = collect_connectors(host, config={"mcp": {"servers": servers}})
    by_name = {c.name: c for c in found if isinstance(c, MCPConnector)}
    calc, time = by_name["calc"], by_name["time"]

    def calling(connector: MCPConnector, tool: str, args: dict[str, Any]) -> Any:
        async def node(message: Any, ctx: Any) -> Any:
            return (await connector.call_tool(tool, args)).structured

        return create(
            Node(node, name=f"call_{connector.name}", policy=NodePolicy(validate="none")).to()
        )

    def alive(connector: MCPConnector) -> bool:
        return connector._session is not None and connector._session.alive

    async def closed(connector: MCPConnector) -> None:
        # The hook closes sessions in tasks of its own: poll until they are done, with a
        # deadline.
        from penguiflow_mcp import hooks

        with anyio.fail_after(20):
            while connector._session is not None or hooks._closing:
                await anyio.sleep(0.01)

    async def through(flow: Any) -> Any:
        await flow.emit(Message(payload=None, headers=Headers(tenant="t")))
        return await flow.fetch()

    async def scenario() -> None:
        uses_calc = calling(calc, "add", {"a": 1, "b": 1})
        uses_time = calling(time, "get_current_time", {"timezone": "UTC"})
        also_calc = calling(calc, "add", {"a": 2, "b": 2})
        uses_calc.run()
        uses_time.run()
        assert await through(uses_calc) == {"sum": 2}
        assert "datetime" in await through(uses_time)
        assert alive(calc) and alive(time)

        await uses_calc.stop()
        await closed(calc)
        assert alive(time)  # the other flow's session stays open
        await uses_time.stop()
        await closed(time)

        # Shared: a session two flows use closes when the last of them stops.
        uses_calc.run()
        also_calc.run()
        await through(uses_calc)
        await through(also_calc)
        await uses_calc.stop()
        assert alive(calc)
        await also_calc.stop()
        await closed(calc)

        # Opened outside any flow: no flow's stop closes it.
        assert (await calc.call_tool("add", {"a": 2, "b": 2})).structured == {"sum": 4}
        uses_time.run()
        # Called by the task that started a flow, after run(): still not that flow's work.
        assert (await calc.call_tool("add", {"a": 3, "b": 3})).structured == {"sum": 6}
        await through(uses_time)
        await uses_time.stop()
        await closed(time)
        assert alive(calc)
        await calc.aclose()
        await time.aclose()

    reset_hooks(host)
    try:
        run_async(scenario, timeout=120)
    finally:
        reset_hooks(None)


def test_concurrent_first_calls_open_one_session(
    http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: each concurrent first call made its own lock and gate, so each opened a
    # session of its own and the concurrency limit did not hold.
    from penguiflow_mcp import connector as module

    opened: list[object] = []
    original = module._Session.open

    async def counting(self: Any) -> None:
        opened.append(self)
        await original(self)

    monkeypatch.setattr(module._Session, "open", counting)

    async def scenario(c: MCPConnector) -> None:
        results = await asyncio.gather(*(c.call_tool("add", {"a": n, "b": 1}) for n in range(6)))
        assert [r.structured["sum"] for r in results] == [n + 1 for n in range(6)]

    run_async(lambda: using(http(http_server, max_concurrency=2), scenario))
    assert len(opened) == 1
