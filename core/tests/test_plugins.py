"""The plugin host on the kernel's own (built-in) entry points, and hooks from in-test plugins.

Discovery across real third-party distributions is tested in tests/test_plugin_discovery.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
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
    CONFIG_ENV,
    DRIVER_KINDS,
    DriverNotFoundError,
    PluginConfigError,
    PluginError,
    PluginLoadError,
    PluginSettings,
    list_plugins,
    load_hooks,
    reset_hooks,
    resolve_driver,
)
from penguiflow.plugins._drivers import driver_key
from penguiflow.state.in_memory import InMemoryStateStore
from penguiflow.testing import DistributionSite as Site
from penguiflow.testing import HookPluginConformance
from penguiflow.testing import distribution_site as site_on_path
from penguiflow.types import Headers, Message


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from site_on_path(tmp_path, monkeypatch)


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
    # a distribution name disables every entry point it installs, whatever they are called
    by_package = PluginSettings.from_env({"PENGUIFLOW_DISABLE_PLUGINS": "Penguiflow_Prometheus"})
    assert by_package.is_disabled("penguiflow", "prometheus", "penguiflow-prometheus")
    assert not by_package.is_disabled("penguiflow", "prometheus", "penguiflow-otel")
    assert not by_package.is_disabled("penguiflow", "prometheus")
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
    def penguiflow_flow_startup(self, flow: Any, role: str) -> None:
        self.started.append((flow, role))

    @hookimpl
    def penguiflow_flow_shutdown(self, flow: Any) -> None:  # need not name `role`
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
    assert observer.started == [(flow, "local")] and observer.stopped == [flow]
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
    assert ("penguiflow.join_strategies", "append", "available") in {
        (r["group"], r["name"], r["status"]) for r in rows
    }


# -- drivers installed while the process runs ---------------------------------------------


def test_a_driver_installed_after_its_group_was_used_resolves(site: Site) -> None:
    """Regression: stevedore cached each group's entry points for the whole process, so a
    driver that discovery listed was "not found" when chosen."""
    assert resolve_driver("join_strategy", "append").name == "append"  # the group is used
    site.install(
        "pf-test-later",
        {"penguiflow.join_strategies": {"later": "pf_test_later:make"}},
        {"pf_test_later": """
            from penguiflow.joins import AppendJoin

            def make(name, **options):
                return AppendJoin()
        """},
    )  # fmt: skip
    assert resolve_driver("join_strategy", "later").name == "append"


# -- the plugin configuration and penguiflow_configure ------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.configured: list[dict[str, Any]] = []

    @hookimpl
    def penguiflow_configure(self, config: dict[str, Any]) -> None:
        self.configured.append(config)
        config.setdefault("recorder", {})["seen"] = True


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_the_configuration_starts_from_the_file_and_code_overlays_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    path = tmp_path / f"plugins{suffix}"
    if suffix == ".toml":
        path.write_text('[mcp]\nservers = []\n\n[utcp]\nmanuals = [{name = "a"}]\n')
    else:
        path.write_text(json.dumps({"mcp": {"servers": []}, "utcp": {"manuals": [{"name": "a"}]}}))
    monkeypatch.setenv(CONFIG_ENV, str(path))
    recorder = Recorder()
    host = load_hooks(
        PluginSettings(disabled=frozenset({"penguiflow:*"})),
        config={"utcp": {"manuals": []}},
        extra=[recorder],
    )
    assert host.config == {"mcp": {"servers": []}, "utcp": {"manuals": []},
                           "recorder": {"seen": True}}  # fmt: skip
    assert recorder.configured == [host.config] and recorder.configured[0] is host.config


def test_configure_runs_once_and_for_plugins_registered_later() -> None:
    first, later = Recorder(), Recorder()
    host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})), extra=[first])
    host.manager.register(later)
    assert len(first.configured) == 1 and later.configured == [host.config]


def test_a_bad_configuration_file_says_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = PluginSettings(disabled=frozenset({"penguiflow:*"}))
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(PluginConfigError, match="cannot read the plugin configuration"):
        load_hooks(settings)
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")
    monkeypatch.setenv(CONFIG_ENV, str(broken))
    with pytest.raises(PluginConfigError, match="holds a list; its top level must be a table"):
        load_hooks(settings)
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_hooks(settings)


def test_a_failing_configure_names_its_plugin() -> None:
    class Broken:
        @hookimpl
        def penguiflow_configure(self, config: dict[str, Any]) -> None:
            raise KeyError("region")

    broken = Broken()
    settings = PluginSettings(disabled=frozenset({"penguiflow:*"}))
    # Outside strict mode the failure is recorded and skipped (tests/test_plugin_failures.py).
    recorder = Recorder()
    load_hooks(settings, extra=[recorder, broken])
    assert recorder.configured  # the other plugin was configured all the same
    with pytest.raises(PluginLoadError) as info:
        load_hooks(replace(settings, strict=True), extra=[Recorder(), broken])
    message = str(info.value)
    assert f"hook plugin '{id(broken)}' failed in penguiflow_configure: KeyError" in message
    assert f"PENGUIFLOW_DISABLE_PLUGINS={id(broken)}" in message
    assert issubclass(PluginLoadError, PluginError)


# -- plugins declaring hooks of their own (penguiflow_addhooks) ----------------------------

PROVIDER = """
from penguiflow.hookspecs import hookimpl, hookspec


class Specs:
    @hookspec
    def penguiflow_test_greetings(self, name: str) -> list[str]:
        \"\"\"A hook only this provider declares.\"\"\"


@hookimpl
def penguiflow_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(Specs)
"""

IMPLEMENTER = """
from penguiflow.hookspecs import hookimpl


@hookimpl
def penguiflow_test_greetings(name):
    return [f"hello {name}"]
"""


def install_implementer(site: Site, source: str = IMPLEMENTER) -> None:
    # "aaa" sorts (and so is discovered) before the plugin declaring its hook.
    site.install("pf-test-aaa", {"penguiflow": {"aaa": "pf_test_aaa"}}, {"pf_test_aaa": source})


def install_provider(site: Site) -> None:
    site.install("pf-test-zzz", {"penguiflow": {"zzz": "pf_test_zzz"}}, {"pf_test_zzz": PROVIDER})


def test_a_hook_declared_by_a_plugin_registered_later() -> None:
    import types

    from penguiflow.plugins._hooks import unknown_hooks

    provider, implementer = types.ModuleType("provider"), types.ModuleType("implementer")
    exec(PROVIDER, provider.__dict__)
    exec(IMPLEMENTER, implementer.__dict__)
    host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})), extra=[implementer])
    assert unknown_hooks(host.manager, implementer) == ["penguiflow_test_greetings"]
    host.manager.register(provider)  # its penguiflow_addhooks runs now (a historic hook)
    assert unknown_hooks(host.manager, implementer) == []
    assert host.hook.penguiflow_test_greetings(name="ada") == [["hello ada"]]


def test_entry_points_that_implement_hooks_another_plugin_declares(site: Site) -> None:
    install_implementer(site)
    install_provider(site)
    host = load_hooks(PluginSettings(strict=True))
    records = {r.name: r for r in host.records}
    assert records["aaa"].status == records["zzz"].status == "loaded"
    assert records["aaa"].error is None
    assert host.hook.penguiflow_test_greetings(name="bo") == [["hello bo"]]


def test_a_hook_nobody_declares_is_reported_and_strict_mode_raises(site: Site) -> None:
    install_implementer(site)
    record = next(r for r in load_hooks(PluginSettings()).records if r.name == "aaa")
    assert record.status == "loaded"
    problem = "implements penguiflow_test_greetings, which no loaded plugin declares"
    assert problem in str(record.error) and "optionalhook=True" in str(record.remedy)
    with pytest.raises(PluginLoadError, match=rf"hook plugin 'aaa' .* {problem}"):
        load_hooks(PluginSettings(strict=True))


def test_an_implementation_that_does_not_match_the_spec_fails_alone(site: Site) -> None:
    install_implementer(site, IMPLEMENTER.replace("greetings(name)", "greetings(nom)"))
    install_provider(site)
    records = {r.name: r for r in load_hooks(PluginSettings()).records}
    assert records["zzz"].status == "loaded"
    assert records["aaa"].status == "failed" and "nom" in str(records["aaa"].error)


class TestAPluginImplementingAnotherPluginsHook(HookPluginConformance):
    """The suite judges a plugin against the hooks the installed plugins declare."""

    @pytest.fixture(autouse=True)
    def _provider_installed(self, site: Site) -> None:
        install_provider(site)

    def make_plugin(self) -> Any:
        import types

        implementer = types.ModuleType("implementer")
        exec(IMPLEMENTER, implementer.__dict__)
        return implementer


def test_two_hook_plugins_with_one_name_are_both_reported(site: Site) -> None:
    for dist in ("pf-test-dupe-a", "pf-test-dupe-b"):
        module = dist.replace("-", "_")
        site.install(dist, {"penguiflow": {"dupe": module}}, {module: IMPLEMENTER})
    install_provider(site)
    dupes = [r for r in load_hooks(PluginSettings()).records if r.name == "dupe"]
    assert sorted(r.status for r in dupes) == ["failed", "loaded"]
    failed = next(r for r in dupes if r.status == "failed")
    assert "already registered" in str(failed.error)
