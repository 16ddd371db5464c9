"""UTCPConnector against a UTCP manual served by a real HTTP app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import free_port
from penguiflow_utcp import UTCPConnectionError, UTCPConnector, UTCPToolError

from penguiflow.testing import run_async


async def using(connector: UTCPConnector, scenario: Any) -> Any:
    try:
        return await scenario(connector)
    finally:
        await connector.aclose()


def test_a_manual_is_discovered_and_its_tools_called(manual_url: str) -> None:
    async def scenario(c: UTCPConnector) -> None:
        specs = await c.tool_specs()
        assert sorted(s.name for s in specs) == [
            "notes.add",
            "notes.broken",
            "notes.search",
            "notes.slow",
        ]
        add = next(s for s in specs if s.name == "notes.add")
        assert add.args_schema["required"] == ["a", "b"] and "utcp" in add.tags
        assert add.call is not None
        assert (await add.call({"a": 2, "b": 40})).structured == {"sum": 42}
        assert (await c.call_tool("search", {"query": "penguins"})).structured == {
            "hits": ["note about penguins"]
        }

    run_async(lambda: using(UTCPConnector.http("notes", manual_url), scenario))


def test_bad_arguments_and_failing_tools(manual_url: str) -> None:
    async def scenario(c: UTCPConnector) -> None:
        with pytest.raises(
            UTCPToolError, match=r"do not match its schema \(not sent\): b: field required"
        ):
            await c.call_tool("add", {"a": 1})
        with pytest.raises(
            UTCPToolError, match="has no tool 'mul'; it has: add, broken, search, slow"
        ):
            await c.call_tool("mul", {})
        with pytest.raises(UTCPToolError, match=r"notes\.broken failed"):
            await c.call_tool("broken", {"query": "x"})

    run_async(lambda: using(UTCPConnector.http("notes", manual_url), scenario))


def test_an_unreachable_manual_is_a_clear_error() -> None:
    connector = UTCPConnector.http("gone", f"http://127.0.0.1:{free_port()}/utcp", timeout_s=5)
    with pytest.raises(UTCPConnectionError, match="UTCP manual 'gone' could not be"):
        run_async(lambda: using(connector, lambda c: c.list_tools()))


def test_two_manuals_with_the_same_tools_are_namespaced(manual_url: str) -> None:
    first, second = UTCPConnector.http("a", manual_url), UTCPConnector.http("b", manual_url)

    async def scenario() -> None:
        try:
            names = [s.name for c in (first, second) for s in await c.tool_specs()]
            assert "a.add" in names and "b.add" in names
            assert (await second.call_tool("add", {"a": 1, "b": 1})).structured == {"sum": 2}
        finally:
            await first.aclose()
            await second.aclose()

    run_async(scenario)


def test_manual_names_are_checked() -> None:
    with pytest.raises(ValueError, match="must start with a letter"):
        UTCPConnector.http("9lives", "http://127.0.0.1:9/utcp")
    assert (
        json.loads(json.dumps(UTCPConnector.http("ok", "http://h/utcp").call_template))["name"]
        == "ok"
    )


def test_the_plugin_hook_contributes_configured_manuals(manual_url: str) -> None:
    from penguiflow.plugins import PluginSettings, collect_connectors, load_hooks

    host = load_hooks(PluginSettings())
    config = {"utcp": {"manuals": [{"name": "notes", "url": manual_url}]}}
    (notes,) = [c for c in collect_connectors(host, config=config) if isinstance(c, UTCPConnector)]

    async def scenario(c: UTCPConnector) -> None:
        assert (await c.call_tool("add", {"a": 3, "b": 4})).structured == {"sum": 7}

    run_async(lambda: using(notes, scenario))
    with pytest.raises(ValueError, match="needs url="):
        collect_connectors(host, config={"utcp": {"manuals": [{"name": "x"}]}})


def test_concurrent_first_calls_register_the_manual_once(
    manual_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: each concurrent first call made its own lock and registered the manual.
    from utcp.utcp_client import UtcpClient

    created: list[object] = []
    original = UtcpClient.create.__func__  # type: ignore[attr-defined]

    async def counting(cls: Any, *args: Any, **kwargs: Any) -> Any:
        client = await original(cls, *args, **kwargs)
        created.append(client)
        return client

    monkeypatch.setattr(UtcpClient, "create", classmethod(counting))

    async def scenario(c: UTCPConnector) -> None:
        await asyncio.gather(*(c.call_tool("add", {"a": n, "b": 0}) for n in range(4)))

    run_async(lambda: using(UTCPConnector.http("notes", manual_url), scenario))
    assert len(created) == 1
