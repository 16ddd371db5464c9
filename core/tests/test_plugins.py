"""The plugin host on the kernel's own (built-in) entry points, and hooks from in-test plugins.

Discovery across real third-party distributions is tested in tests/test_plugin_discovery.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from click.testing import CliRunner

from penguiflow.bus import InMemoryMessageBus
from penguiflow.cli import cli
from penguiflow.core import create
from penguiflow.hookspecs import hookimpl
from penguiflow.metrics import FlowEvent
from penguiflow.node import Node, NodePolicy
from penguiflow.plugins import (
    DRIVER_KINDS,
    DriverNotFoundError,
    PluginSettings,
    list_plugins,
    load_hooks,
    reset_hooks,
    resolve_driver,
)
from penguiflow.plugins._drivers import driver_key
from penguiflow.state.in_memory import InMemoryStateStore
from penguiflow.types import Headers, Message


def test_settings_from_env_and_config() -> None:
    settings = PluginSettings.from_env(
        {
            "PENGUIFLOW_DISABLE_PLUGINS": " redis, penguiflow.state_stores:memory ,",
            "PENGUIFLOW_STRICT_PLUGINS": "yes",
        }
    )
    assert settings.strict and settings.disabled == {"redis", "penguiflow.state_stores:memory"}
    assert settings.is_disabled("anything", "redis")
    assert settings.is_disabled("penguiflow.state_stores", "memory")
    assert not settings.is_disabled("penguiflow.message_buses", "memory")
    merged = PluginSettings().merged(disabled=["x"], strict=True)
    assert merged.disabled == {"x"} and merged.strict
    assert PluginSettings.from_env({}) == PluginSettings()


def test_driver_keys() -> None:
    store = DRIVER_KINDS["state_store"]
    assert driver_key(store, "SQLite:///tmp/x.db") == "sqlite"
    with pytest.raises(ValueError, match=r"'flows\.db' is not a URL"):
        driver_key(store, "flows.db")
    assert driver_key(DRIVER_KINDS["runtime"], "local") == "local"
    assert driver_key(DRIVER_KINDS["runtime"], "redis://h:6379/0") == "redis"


def test_builtin_drivers_resolve_by_url_and_name() -> None:
    assert isinstance(resolve_driver("state_store", "memory://"), InMemoryStateStore)
    bus = resolve_driver("message_bus", "memory://", history=5)
    assert isinstance(bus, InMemoryMessageBus) and bus.envelopes.maxlen == 5
    assert resolve_driver("runtime", "local").name == "local"
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['colour'\]"):
        resolve_driver("state_store", "memory://", colour="blue")
    with pytest.raises(ValueError, match="unknown driver kind 'cache'; choose one of"):
        resolve_driver("cache", "memory://")


def test_missing_driver_says_what_is_installed_and_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A scheme no installed package provides, whatever is installed on this machine.
    kind = DRIVER_KINDS["state_store"]
    providers = {**kind.providers, "nosuchdb": "penguiflow-nosuchdb"}
    monkeypatch.setitem(DRIVER_KINDS, "state_store", dataclasses.replace(kind, providers=providers))
    with pytest.raises(DriverNotFoundError) as info:
        resolve_driver("state_store", "nosuchdb://127.0.0.1:1/0")
    message = str(info.value)
    assert "no state store for scheme 'nosuchdb'" in message
    installed = message.split("installed: ", 1)[1].split(";", 1)[0].split(", ")
    assert {"memory", "sqlite"} <= set(installed)
    assert "install it with `pip install penguiflow-nosuchdb`" in message
    with pytest.raises(LookupError, match="no LLM adapter for name 'nope'"):
        resolve_driver("llm_adapter", "nope")


def test_disabling_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PENGUIFLOW_DISABLE_PLUGINS", "penguiflow.state_stores:memory")
    with pytest.raises(DriverNotFoundError, match="is disabled"):
        resolve_driver("state_store", "memory://")
    assert isinstance(resolve_driver("message_bus", "memory://"), InMemoryMessageBus)
    statuses = {(r.group, r.name): r.status for r in list_plugins(include_hooks=False)}
    assert statuses[("penguiflow.state_stores", "memory")] == "disabled"
    assert statuses[("penguiflow.message_buses", "memory")] == "available"


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


async def test_create_accepts_driver_urls() -> None:
    node = Node(passthrough, name="n", policy=NodePolicy(validate="none"))
    flow = create(node.to(), state_store="memory://", message_bus="memory://", runtime="local")
    assert isinstance(flow._state_store, InMemoryStateStore)
    flow.run()
    message = Message(payload=1, headers=Headers(tenant="t"))
    await flow.emit(message)
    await flow.fetch()
    await flow.stop()
    assert [e.kind for e in await flow.load_history(message.trace_id)][:2] == [
        "node_start",
        "node_success",
    ]
    assert flow._message_bus.edges() == ["OpenSea->n", "n->Rookery"]  # type: ignore[union-attr]
    with pytest.raises(DriverNotFoundError, match="no runtime for name 'ray'"):
        create(node.to(), runtime="ray")


class Observer:
    """An in-test hook plugin: a sink plus startup/shutdown bookkeeping."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.stopped: list[Any] = []
        self.events: list[str] = []

    @hookimpl
    def penguiflow_observability_sinks(self, flow: Any) -> list[Any]:
        async def sink(event: FlowEvent) -> None:
            self.events.append(event.event_type)

        return [sink]

    @hookimpl
    def penguiflow_flow_startup(self, flow: Any) -> None:
        self.started.append(flow)

    @hookimpl
    def penguiflow_flow_shutdown(self, flow: Any) -> None:
        self.stopped.append(flow)


async def test_hooks_run_at_start_and_stop_only() -> None:
    observer = Observer()
    reset_hooks(load_hooks(PluginSettings(), extra=[observer]))
    try:
        node = Node(passthrough, name="n", policy=NodePolicy(validate="none"))
        flow = create(node.to())
        flow.run()
        await flow.emit(Message(payload=1, headers=Headers(tenant="t")))
        await flow.fetch()
        await flow.stop()
    finally:
        reset_hooks()
    assert observer.started == [flow] and observer.stopped == [flow]
    assert observer.events[:2] == ["node_start", "node_success"]


def test_cli_lists_builtins_as_table_and_json() -> None:
    runner = CliRunner()
    table = runner.invoke(cli, ["plugins", "list"])
    assert table.exit_code == 0
    assert table.output.splitlines()[0].split() == [
        "NAME",
        "GROUP",
        "DISTRIBUTION",
        "VERSION",
        "STATUS",
        "ERROR",
    ]
    assert "penguiflow.runtimes" in table.output
    result = runner.invoke(cli, ["plugins", "list", "--json"])
    assert result.exit_code == 0
    import json

    rows = json.loads(result.output)
    assert {"name", "group", "distribution", "version", "status", "error"} <= set(rows[0])
    assert {(r["group"], r["name"], r["status"]) for r in rows} >= {
        ("penguiflow.state_stores", "memory", "available"),
        ("penguiflow.runtimes", "local", "available"),
    }
    assert runner.invoke(cli, ["--version"]).output.startswith("penguiflow, version ")
