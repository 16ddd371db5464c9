"""Connectors through the hook: one call through pluggy with a `register` callback, each
connector attributed to its plugin, namespacing, and collisions that name both sides."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from penguiflow.connectors import (
    Connector,
    ToolContentRef,
    ToolNameCollisionError,
    ToolResourceLink,
    ToolResult,
    namespaced_tools,
    tool_result_schema,
)
from penguiflow.errors import PenguiFlowError
from penguiflow.hookspecs import hookimpl
from penguiflow.plugins import (
    ConnectorRegistrar,
    PluginError,
    PluginSettings,
    collect_connectors,
    load_hooks,
)


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


def plugin(*servers: Server) -> Any:
    class Plugin:
        @hookimpl
        def penguiflow_register_connectors(self, register: ConnectorRegistrar) -> None:
            for server in servers:
                register(server)

    return Plugin()


def host_with(*plugins: Any, config: dict[str, Any] | None = None) -> Any:
    host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})), config=config)
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
    assert isinstance(info.value, PenguiFlowError) and isinstance(info.value, ValueError)


class ViaHelper:
    """Registers from a helper function and a helper method, not from the hook itself."""

    @hookimpl
    def penguiflow_register_connectors(self, register: ConnectorRegistrar) -> None:
        _register_from_a_module_function(register, Server("shared", ["x"]))

    def unrelated(self) -> None: ...


def _register_from_a_module_function(register: ConnectorRegistrar, server: Server) -> None:
    register(server)


class Plain:
    @hookimpl
    def penguiflow_register_connectors(self, register: ConnectorRegistrar) -> None:
        register(Server("shared", ["y"]))


@pytest.mark.parametrize("order", [("helper", "plain"), ("plain", "helper")])
def test_the_collision_names_the_plugins_that_registered(order: tuple[str, str]) -> None:
    """Attribution follows the implementation on the stack, even through helpers, and
    whatever the call order (pluggy calls later-registered implementations first)."""
    host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})))
    for name in order:
        host.manager.register(ViaHelper() if name == "helper" else Plain(), name=name)
    with pytest.raises(ToolNameCollisionError) as info:
        collect_connectors(host)
    first, second = reversed(order)  # LIFO: the plugin registered last registers first
    assert f"by plugin {first!r} and by plugin {second!r}" in str(info.value)


def test_a_wrapper_implementation_sees_every_contribution() -> None:
    seen: dict[str, Any] = {}

    class Wrapper:
        @hookimpl(wrapper=True)
        def penguiflow_register_connectors(
            self, register: ConnectorRegistrar, config: dict[str, Any]
        ) -> Generator[None, list[Any], list[Any]]:
            seen["before"] = [c.name for c in register.connectors]
            register(Server("from_wrapper", ["w"]))
            results = yield
            seen["after"] = [c.name for c in register.connectors]
            seen["owners"] = {c.name: register.owner(c.name) for c in register.connectors}
            seen["results"] = results
            return results

    host = host_with(plugin(Server("a", ["x"])), plugin(Server("b", ["y"])), Wrapper())
    names = [c.name for c in collect_connectors(host)]
    assert seen["before"] == [] and seen["results"] == []
    assert seen["after"] == names == ["from_wrapper", "b", "a"]
    assert seen["owners"] == {"from_wrapper": "plugin2", "b": "plugin1", "a": "plugin0"}


def test_the_hook_call_goes_through_pluggy_so_tracing_sees_it() -> None:
    calls: list[tuple[str, list[str]]] = []
    host = host_with(plugin(Server("a", ["x"])))

    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        calls.append((hook_name, sorted(kwargs)))

    def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Any) -> None: ...

    undo = host.manager.add_hookcall_monitoring(before, after)
    try:
        collect_connectors(host)
    finally:
        undo()
    assert calls == [("penguiflow_register_connectors", ["config", "register"])]


def test_configure_changes_what_the_connector_hook_sees() -> None:
    class Configurer:
        @hookimpl
        def penguiflow_configure(self, config: dict[str, Any]) -> None:
            config.setdefault("demo", {})["names"] = [*config["demo"]["names"], "added"]

    class FromConfig:
        @hookimpl
        def penguiflow_register_connectors(
            self, register: ConnectorRegistrar, config: dict[str, Any]
        ) -> None:
            for name in config["demo"]["names"]:
                register(Server(name, ["t"]))

    host = load_hooks(
        PluginSettings(disabled=frozenset({"penguiflow:*"})),
        config={"demo": {"names": ["given"]}},
        extra=[Configurer(), FromConfig()],
    )
    assert host.config["demo"]["names"] == ["given", "added"]
    assert [c.name for c in collect_connectors(host)] == ["given", "added"]
    # A caller may still pass a configuration of its own for one collection.
    assert [c.name for c in collect_connectors(host, config={"demo": {"names": ["x"]}})] == ["x"]


def test_non_connector_is_a_clear_error() -> None:
    class Bad:
        @hookimpl
        def penguiflow_register_connectors(self, register: ConnectorRegistrar) -> None:
            register("not a connector")  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="plugin 'plugin0' registered 'not a connector'"):
        collect_connectors(host_with(Bad()))


def test_returning_connectors_instead_of_registering_them_is_refused() -> None:
    class OldStyle:
        @hookimpl
        def penguiflow_register_connectors(self) -> list[Any]:
            return [Server("old", ["x"])]

    with pytest.raises(TypeError, match=r"call register\(connector\) for each connector"):
        collect_connectors(host_with(OldStyle()))


def test_register_after_the_hook_returned_is_refused() -> None:
    kept: list[ConnectorRegistrar] = []

    class Keeper:
        @hookimpl
        def penguiflow_register_connectors(self, register: ConnectorRegistrar) -> None:
            kept.append(register)

    assert collect_connectors(host_with(Keeper())) == []
    with pytest.raises(PluginError, match="after penguiflow_register_connectors returned"):
        kept[0](Server("late", ["x"]))


def test_duplicate_tools_and_connectors_in_one_catalogue() -> None:
    with pytest.raises(ToolNameCollisionError, match="lists tool 'x' twice"):
        asyncio.run(namespaced_tools([Server("s", ["x", "x"])]))
    with pytest.raises(ToolNameCollisionError, match="two connectors are named 's'"):
        asyncio.run(namespaced_tools([Server("s", ["x"]), Server("s", ["y"])]))


# -- ToolResult: the one shape of a connector call's answer -----------------------------------


def test_a_tool_result_shows_the_model_only_what_it_holds() -> None:
    assert ToolResult().model_dump(mode="json") == {}
    assert ToolResult(text="hi").model_dump(mode="json") == {"text": "hi"}
    ref = ToolContentRef(ref="mcp://s/1", mime_type="image/png", size=3)
    link = ToolResourceLink(uri="file:///a.txt", name="a.txt")
    full = ToolResult(text="t", structured={"n": 0}, references=(ref,), links=(link,))
    assert full.model_dump(mode="json") == {
        "text": "t",
        "structured": {"n": 0},
        "references": [{"ref": "mcp://s/1", "mime_type": "image/png", "size": 3}],
        "links": [{"uri": "file:///a.txt", "name": "a.txt"}],
    }
    # Falsy structured values are values the tool returned, not "empty".
    for value in ({}, [], 0, False, ""):
        dumped = ToolResult(structured=value).model_dump(mode="json")
        assert dumped == {"structured": value}
        assert ToolResult.model_validate(dumped) == ToolResult(structured=value)
    assert ToolResult.model_validate(full.model_dump(mode="json")) == full
    assert ToolResult.model_validate_json(full.model_dump_json()) == full


def test_a_tool_result_is_frozen_and_strict_about_its_fields() -> None:
    from pydantic import ValidationError

    result = ToolResult(text="x")
    with pytest.raises(ValidationError, match="frozen"):
        result.text = "y"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        ToolResult.model_validate({"txt": "typo"})
    with pytest.raises(ValidationError, match="size"):
        ToolContentRef.model_validate({"ref": "r", "mime_type": "text/plain"})


def test_the_result_schema_describes_the_dump_and_the_tools_own_output() -> None:
    from penguiflow.catalog import argument_errors

    plain = tool_result_schema()
    assert set(plain["properties"]) == {"text", "structured", "references", "links"}
    assert "required" not in plain and "$defs" not in plain
    full = ToolResult(
        text="t",
        structured={"n": 1},
        references=(ToolContentRef(ref="r", mime_type="text/plain", size=1, preview="x"),),
        links=(ToolResourceLink(uri="u"),),
    )
    assert argument_errors(plain, full.model_dump(mode="json")) == []
    own = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/count"}},
        "$defs": {"count": {"type": "integer"}},
    }
    described = tool_result_schema(own)
    # The tool's definitions move to the root, where its "#/$defs/..." references point.
    assert described["$defs"] == {"count": {"type": "integer"}}
    assert described["properties"]["structured"] == {
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/count"}},
    }
    assert "$defs" in own  # the caller's schema is left as it was
    # Short enough to show for every tool in a planner's prompt.
    assert len(json.dumps(plain)) < 600


async def _answer(connector: Connector) -> ToolResult:
    tools = await namespaced_tools([connector])
    return await tools["typed.echo"].call({"say": "hi"})


def test_a_connector_tool_answers_a_tool_result() -> None:
    class Typed:
        name = "typed"

        async def list_tools(self) -> Sequence[Tool]:
            return [Tool("echo")]

        async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> ToolResult:
            return ToolResult(text=str(arguments["say"]))

    assert asyncio.run(_answer(Typed())) == ToolResult(text="hi")
