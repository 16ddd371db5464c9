"""A real Prometheus server (Debian's package) scrapes our endpoint every second while a
real local flow runs; the expected series come back through its HTTP query API."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from penguiflow_prometheus import PrometheusSink, start_metrics_server
from services import PrometheusServer, ensure_prometheus

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.observability import Event, add_event_sink, publish
from penguiflow.testing import run_async


def query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(base: str, expr: str, expected: float, within: float = 60.0) -> list[dict[str, Any]]:
    """Poll Prometheus until `expr` has one series whose value is `expected`."""
    deadline = time.monotonic() + within
    last: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        last = query(base, expr)
        if len(last) == 1 and float(last[0]["value"][1]) == expected:
            return last
        time.sleep(0.2)  # polling Prometheus's state, not waiting for time to pass
    raise AssertionError(f"{expr} never became {expected} within {within}s; last: {last}")


def test_prometheus_scrapes_the_series_of_a_flow_run(registry: Any, tmp_path: Path) -> None:
    ensure_prometheus()
    calls = 0

    async def double(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": message.payload * 2})

    async def flaky(message: Message, ctx: Any) -> Message:
        nonlocal calls
        calls += 1
        if calls % 2 == 1:  # every first attempt fails, its retry succeeds
            raise RuntimeError("first attempts fail")
        return message

    first = Node(double, name="double", policy=NodePolicy(validate="none"))
    second = Node(
        flaky, name="flaky", policy=NodePolicy(validate="none", max_retries=1, backoff_base=0.001)
    )

    async def run_flow() -> None:
        flow = create(first.to(second), second.to())
        flow.run()
        try:
            for n in range(3):
                await flow.emit(Message(payload=n, headers=Headers(tenant="acme")))
                assert (await flow.fetch()).payload == 2 * n
        finally:
            await flow.stop()
        # An LLM call as the LLM clients report one (GenAI attributes, usage measurements).
        await publish(
            Event(
                "llm",
                "call",
                duration_ms=1500.0,
                attributes={"gen_ai.request.model": "small-model", "status": "ok"},
                measurements={"input_tokens": 120.0, "output_tokens": 30.0, "cost_usd": 0.25},
            )
        )

    sink = PrometheusSink(registry)
    remove = add_event_sink(sink)
    server = start_metrics_server(0, registry=registry)
    prometheus = PrometheusServer(tmp_path / "services")
    try:
        run_async(run_flow)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: penguiflow\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{server.port}']\n"
        )
        base = prometheus.start(config)
        wait_for(base, 'penguiflow_node_duration_seconds_count{node="double"}', 3)
        # Three attempts failed and were retried: six invocations of flaky.
        wait_for(base, 'penguiflow_node_duration_seconds_count{node="flaky"}', 6)
        wait_for(base, 'penguiflow_node_retries_total{node="flaky"}', 3)
        wait_for(base, 'penguiflow_llm_input_tokens_total{model="small-model"}', 120)
        wait_for(base, 'penguiflow_llm_cost_usd_total{model="small-model"}', 0.25)
        series = wait_for(base, 'up{job="penguiflow"}', 1)
        assert series[0]["metric"]["instance"] == f"127.0.0.1:{server.port}"
        # No trace ids in any label of any series Prometheus holds for us.
        labels = query(base, '{__name__=~"penguiflow_.+"}')
        assert labels
        for one in labels:
            for name in one["metric"]:
                assert name in {"__name__", "instance", "job", "node", "model", "code", "le"}
    finally:
        prometheus.stop()
        run_async(server.aclose)
        remove()
