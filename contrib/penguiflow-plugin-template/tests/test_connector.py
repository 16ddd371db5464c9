"""The hook plugin passes the conformance suite and its tools are namespaced."""

from __future__ import annotations

import asyncio
from typing import Any

from penguiflow_plugin_template import hooks

from penguiflow.connectors import namespaced_tools
from penguiflow.plugins import PluginSettings, collect_connectors, load_hooks
from penguiflow.testing import HookPluginConformance


class TestTemplateHooks(HookPluginConformance):
    def make_plugin(self) -> Any:
        return hooks


def test_installed_plugin_is_discovered_and_its_tools_work() -> None:
    host = load_hooks(PluginSettings(strict=True))
    assert any(r.name == "template" and r.status == "loaded" for r in host.records)
    tools = asyncio.run(namespaced_tools(collect_connectors(host)))
    assert {"echo.echo", "echo.reverse"} <= set(tools)
    assert asyncio.run(tools["echo.reverse"].call({"text": "abc"})).text == "cba"
