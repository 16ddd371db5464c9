"""Installed, the plugin's hook contributes its sink (and serves /metrics when asked), and
is loaded strictly with the kernel's plugin host."""

from __future__ import annotations

import logging
import socket
import urllib.request
from typing import Any

import pytest
from penguiflow_prometheus import PrometheusSink, hooks

from penguiflow.observability import Event, event_sinks, publish
from penguiflow.plugins import PluginSettings, load_hooks, reset_hooks
from penguiflow.testing import run_async


@pytest.fixture(autouse=True)
def _fresh_endpoints() -> Any:
    yield
    for server in hooks.served():
        server.close()
    hooks._servers.clear()
    reset_hooks(None)


def test_the_hook_contributes_a_sink_and_serves_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import REGISTRY

    monkeypatch.setenv("PENGUIFLOW_PROMETHEUS_PORT", "0")
    host = load_hooks(PluginSettings(strict=True))
    assert "prometheus" in [record.name for record in host.records]
    reset_hooks(host)
    sinks = [sink for sink in event_sinks() if isinstance(sink, PrometheusSink)]
    assert len(sinks) == 1 and sinks[0].registry is REGISTRY
    (server,) = hooks.served()
    before = REGISTRY.get_sample_value("penguiflow_tool_calls_total", {"tool": "hooked"}) or 0.0
    run_async(lambda: publish(Event("tool", "call", attributes={"tool": "hooked", "status": "ok"})))
    with urllib.request.urlopen(server.url, timeout=5) as response:
        text = response.read().decode()
    assert f'penguiflow_tool_calls_total{{tool="hooked"}} {before + 1}' in text

    # The hook runs again for a new host: same metrics, and no second server.
    reset_hooks(load_hooks(PluginSettings(strict=True)))
    assert [s for s in event_sinks() if isinstance(s, PrometheusSink)]
    assert hooks.served() == [server]


def test_a_taken_port_is_logged_and_metrics_still_recorded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("PENGUIFLOW_PROMETHEUS_PORT", str(port))
        with caplog.at_level(logging.ERROR, logger="penguiflow_prometheus"):
            sinks = hooks.penguiflow_event_sinks(config={})
    assert len(sinks) == 1 and hooks.served() == []
    assert (
        f"127.0.0.1:{port}" in caplog.text and "PENGUIFLOW_PROMETHEUS_PORT=9464-9473" in caplog.text
    )


def test_a_port_range_takes_the_first_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The range holds the taken port first; the next one is (almost surely) free.
        monkeypatch.setenv("PENGUIFLOW_PROMETHEUS_PORT", f"{port}-{port + 20}")
        hooks.penguiflow_event_sinks(config={})
    (server,) = hooks.served()
    assert port < server.port <= port + 20


def test_no_port_serves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PENGUIFLOW_PROMETHEUS_PORT", raising=False)
    sinks = hooks.penguiflow_event_sinks(config={"prometheus": {"max_label_values": 7}})
    assert hooks.served() == []
    assert isinstance(sinks[0], PrometheusSink)
