"""The /metrics endpoint: loopback by default, any free port, closed once, clear errors."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from penguiflow_prometheus import PrometheusSink, start_metrics_server

from penguiflow.errors import ConfigurationError, PenguiFlowError
from penguiflow.observability import Event
from penguiflow.testing import run_async


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_serves_the_registry_on_loopback(registry: Any) -> None:
    PrometheusSink(registry).handle(Event("planner", "step"))

    async def scenario() -> None:
        async with start_metrics_server(0, registry=registry) as server:
            assert server.host == "127.0.0.1" and server.port > 0
            assert server.url == f"http://127.0.0.1:{server.port}/metrics"
            text = get(server.url)
            assert "penguiflow_planner_steps_total 1.0" in text
        with pytest.raises(urllib.error.URLError):
            get(server.url)
        await server.aclose()  # idempotent
        assert "closed" in repr(server)

    run_async(scenario)


def test_a_taken_port_is_a_clear_error(registry: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigurationError, match=rf"127.0.0.1:{port}.*choose a free port"
        ) as info:
            start_metrics_server(port, registry=registry)
    assert isinstance(info.value, PenguiFlowError)


def test_an_impossible_port_is_refused(registry: Any) -> None:
    with pytest.raises(ConfigurationError, match="between 0 and 65535"):
        start_metrics_server(70000, registry=registry)
