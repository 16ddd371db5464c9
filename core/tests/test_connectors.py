"""Connectors through the hook: namespacing, and collisions that name both sides."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from penguiflow.connectors import Connector, ToolNameCollisionError, namespaced_tools
from penguiflow.hookspecs import hookimpl
from penguiflow.plugins import PluginSettings, collect_connectors, collect_named, load_hooks


@dataclass
class Tool:
    name: str


class Server:
    def __init__(self, name: str, tools: list[str]) -> None:
        self.name = name
        self._tools = tools
        self.calls: list[tuple[str, Mapping[str, Any]]] = []

    async def list_tools(self) -> Sequence[Tool]:
        return [Tool(t) for t in self._tools]

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> Any:
        self.calls.append((tool, arguments))
        return f"{self.name}:{tool}"


def plugin(*servers: Server, strategies: dict[str, Any] | None = None) -> Any:
    class Plugin:
        @hookimpl
        def penguiflow_register_connectors(self, config: dict[str, Any]) -> list[Any]:
            return list(servers)

        @hookimpl
        def penguiflow_register_join_strategies(self) -> dict[str, Any]:
            return strategies or {}

    return Plugin()


def host_with(*plugins: Any) -> Any:
    host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})))
    for index, item in enumerate(plugins):
        host.manager.register(item, name=f"plugin{index}")
    return host


def test_same_tool_name_is_namespaced_per_connector() -> None:
    a, b = Server("connA", ["search"]), Server("connB", ["search", "fetch"])
    host = host_with(plugin(a), plugin(b))
    connectors = collect_connectors(host)
    assert all(isinstance(c, Connector) for c in connectors)
    tools = asyncio.run(namespaced_tools(connectors))
    assert sorted(tools) == ["connA.search", "connB.fetch", "connB.search"]
    assert asyncio.run(tools["connB.search"].call({"q": 1})) == "connB:search"
    assert b.calls == [("search", {"q": 1})]


def test_two_plugins_contributing_one_connector_name() -> None:
    host = host_with(plugin(Server("search", ["x"])), plugin(Server("search", ["y"])))
    with pytest.raises(ToolNameCollisionError) as info:
        collect_connectors(host)
    message = str(info.value)
    assert "connector 'search' is contributed by plugin" in message
    assert "'plugin0'" in message and "'plugin1'" in message


def test_duplicate_tools_and_connectors_in_one_catalogue() -> None:
    with pytest.raises(ToolNameCollisionError, match="lists tool 'x' twice"):
        asyncio.run(namespaced_tools([Server("s", ["x", "x"])]))
    with pytest.raises(ToolNameCollisionError, match="two connectors are named 's'"):
        asyncio.run(namespaced_tools([Server("s", ["x"]), Server("s", ["y"])]))


def test_non_connector_is_a_clear_error() -> None:
    class Bad:
        @hookimpl
        def penguiflow_register_connectors(self) -> list[Any]:
            return ["not a connector"]

    with pytest.raises(TypeError, match="plugin 'plugin0' returned 'not a connector'"):
        collect_connectors(host_with(Bad()))


def test_named_contributions_collide_by_plugin() -> None:
    host = host_with(plugin(strategies={"append": 1}), plugin(strategies={"replace": 2}))
    assert collect_named(host, "penguiflow_register_join_strategies", what="join strategy") == {
        "append": 1,
        "replace": 2,
    }
    clash = host_with(plugin(strategies={"append": 1}), plugin(strategies={"append": 2}))
    with pytest.raises(ToolNameCollisionError, match="join strategy 'append' is registered by"):
        collect_named(clash, "penguiflow_register_join_strategies", what="join strategy")
