"""A real MLflow tracking server (SQLite backend) receives a flow running a planner that calls
a tool (which calls an LLM), through MLflow's OTLP/HTTP endpoint configured by OTEL_*
variables only; the trace is read back through MLflow's own client.

Needs mlflow (tox -e otel-mlflow installs it); skipped without it, unless
PENGUIFLOW_OTEL_MLFLOW=1 says it must run (CI). The server: `mlflow_url` in conftest.py."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from mlflow_server import require_mlflow

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.observability import observe
from penguiflow.plugins import PluginSettings, load_hooks, reset_hooks
from penguiflow.tracecontext import root_span


def planner_in_a_flow() -> Any:
    import penguiflow_planner
    from tools import planner_with_search

    planner = planner_with_search(penguiflow_planner)

    async def agent(message: Message, ctx: Any) -> Message:
        # An LLM call of the agent's own (as an adapter makes it), so MLflow shows a chat span.
        async with observe(
            "llm",
            "call",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "scripted-model",
                "gen_ai.provider.name": "penguiflow",
                "gen_ai.input.messages": '[{"role": "user", "content": "hello"}]',
            },
        ) as call:
            call.measurements.update(input_tokens=7, output_tokens=3)
        result = await planner.run(str(message.payload))
        return message.model_copy(update={"payload": result.payload})

    return create(Node(agent, name="agent", policy=NodePolicy(validate="none")).to())


@pytest.mark.anyio
async def test_a_planner_run_is_one_trace_in_mlflow(
    mlflow_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = require_mlflow()
    import penguiflow_otel

    # What a user sets: MLflow's OTLP endpoint and the experiment header (MLflow answers 422
    # without it); MLflow takes no metrics.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{mlflow_url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-mlflow-experiment-id=0")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "penguiflow-mlflow-test")
    monkeypatch.setenv("PENGUIFLOW_STRICT_PLUGINS", "1")
    reset_hooks(load_hooks(PluginSettings.from_env()))  # the installed plugin, as users get it
    try:
        flow = planner_in_a_flow()
        flow.run()
        message = Message(payload="penguins?", headers=Headers(tenant="acme"))
        with anyio.fail_after(30):
            await flow.emit(message)
            await flow.fetch()
        await flow.stop()
    finally:
        penguiflow_otel.shutdown()  # flushes the batch to MLflow
        reset_hooks()

    trace_id = root_span(message.trace_id).trace_id
    client = mlflow.MlflowClient(mlflow_url)
    deadline = time.monotonic() + 60
    while True:
        try:
            trace = client.get_trace(f"tr-{trace_id}")
            if len(trace.data.spans) >= 5:
                break
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"MLflow has {len(trace.data.spans)} spans of the trace")
        await anyio.sleep(0.5)  # polling MLflow's API: the deadline above bounds it
    spans = trace.data.spans
    names = {span.span_id: span.name for span in spans}
    parents = sorted({(s.name, names.get(s.parent_id, "root")) for s in spans})
    assert parents == [
        ("chat scripted", "planner.step"),  # the planner's own calls, on the scripted client
        ("chat scripted-model", "node agent"),
        ("execute_tool search", "planner.step"),
        ("node agent", "root"),
        ("planner.run", "node agent"),
        ("planner.step", "planner.run"),
    ]
    types = {span.name: span.span_type for span in spans}
    assert types["chat scripted-model"] == "CHAT_MODEL"
    assert types["execute_tool search"] == "TOOL"
    assert types["planner.run"] == "AGENT"
    chat = next(span for span in spans if span.name == "chat scripted-model")
    assert chat.inputs == [{"role": "user", "content": "hello"}]
    usage = trace.info.token_usage or {}
    # MLflow sums the chat spans' usage: the agent's own call plus the planner's.
    assert usage.get("input_tokens", 0) > 7 and usage.get("output_tokens", 0) > 3
