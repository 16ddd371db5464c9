"""The installed plugin, as users get it: loaded through its entry point by the kernel's hook
host, configured by OTEL_* variables, exporting over real OTLP/HTTP to a receiver on
127.0.0.1; disabled like any plugin; flushed at process exit."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence

import penguiflow_otel
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from otlp_receiver import otlp_receiver
from penguiflow_otel import OTelConfigError, OTelSink, default_sink, exporter_names

from penguiflow import observability
from penguiflow.observability import Event
from penguiflow.plugins import PluginSettings, load_hooks, reset_hooks
from penguiflow.tracecontext import root_span

TRACE = "0af7651916cd43dd8448eb211c80319c"


def otel_sinks() -> list[OTelSink]:
    return [sink for sink in observability.event_sinks() if isinstance(sink, OTelSink)]


def install_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a process does on its first flow: load the installed hook plugins (strictly,
    as the plugin tox envs do)."""
    monkeypatch.setenv("PENGUIFLOW_STRICT_PLUGINS", "1")
    reset_hooks(load_hooks(PluginSettings.from_env()))


def point_otlp_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "penguiflow-otel-test")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-mlflow-experiment-id=7")


def run_events() -> list[Event]:
    root = root_span(TRACE)
    run = root.child()
    tool = run.child()
    llm = run.child()
    return [
        Event(
            "tool",
            "call",
            ts=100.0,
            duration_ms=20,
            trace_id=TRACE,
            span=tool,
            parent_span_id=run.span_id,
            attributes={"tool": "search", "side_effects": "read", "status": "ok"},
        ),
        Event(
            "llm",
            "call",
            ts=100.02,
            duration_ms=300,
            trace_id=TRACE,
            span=llm,
            parent_span_id=run.span_id,
            attributes={"gen_ai.request.model": "scripted", "gen_ai.system": "penguiflow"},
            measurements={"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.001},
        ),
        Event(
            "planner",
            "finish",
            ts=100.4,
            trace_id=TRACE,
            parent_span_id=run.span_id,
            attributes={"reason": "answer_complete"},
        ),
        Event(
            "planner",
            "run",
            ts=100.0,
            duration_ms=400,
            trace_id=TRACE,
            span=run,
            parent_span_id=root.span_id,
            attributes={"status": "ok", "outcome": "finish", "reason": "answer_complete"},
        ),
    ]


@pytest.mark.anyio
async def test_the_installed_plugin_exports_over_otlp_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with otlp_receiver() as (receiver, url):
        point_otlp_at(monkeypatch, url)
        install_hooks(monkeypatch)
        assert observability.enabled() and len(otel_sinks()) == 1
        for event in run_events():
            await observability.publish(event)
        penguiflow_otel.shutdown()  # flushes: nothing waits for the batch interval
        spans = {span.name: span for span in receiver.wait_for_spans(3)}
        assert receiver.metric_names >= {
            "penguiflow.tool.calls",
            "penguiflow.llm.tokens",
            "penguiflow.llm.cost",
            "penguiflow.planner.finishes",
            "gen_ai.client.token.usage",
        }
    assert set(spans) == {"planner.run", "execute_tool search", "chat scripted"}
    run = spans["planner.run"]
    assert run.trace_id == TRACE and run.parent_span_id == root_span(TRACE).span_id
    assert run.events == ("planner.finish",)
    assert run.resource["service.name"] == "penguiflow-otel-test"
    for child in ("execute_tool search", "chat scripted"):
        assert spans[child].trace_id == TRACE and spans[child].parent_span_id == run.span_id
    assert spans["chat scripted"].attributes["gen_ai.usage.input_tokens"] == 10
    # OTEL_EXPORTER_OTLP_HEADERS reached the wire (MLflow's experiment header, say)
    assert receiver.headers[0]["x-mlflow-experiment-id"] == "7"


@pytest.mark.parametrize(
    "setting",
    [
        {"PENGUIFLOW_DISABLE_PLUGINS": "penguiflow-otel"},
        {"OTEL_SDK_DISABLED": "true"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
    ],
)
def test_disabled_or_with_nothing_to_export_it_contributes_no_sink(
    monkeypatch: pytest.MonkeyPatch, setting: dict[str, str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    install_hooks(monkeypatch)
    assert otel_sinks() == []


def test_plugin_configuration_turns_one_signal_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    sink = default_sink({"otel": {"metrics": False}})
    assert sink is not None and sink.tracer_provider is not None and sink.meter_provider is None
    assert default_sink({"otel": {"metrics": False}}) is sink  # one sink per process
    with pytest.raises(OTelConfigError, match=r"\[otel\] plugin configuration must be a table"):
        penguiflow_otel.shutdown()
        default_sink({"otel": "yes"})


def test_exporter_names_follow_the_otel_variables() -> None:
    assert exporter_names("traces", {}) == ["otlp_proto_http"]
    assert exporter_names("traces", {"OTEL_TRACES_EXPORTER": "console, otlp,console"}) == [
        "console",
        "otlp_proto_http",
    ]
    assert exporter_names(
        "metrics",
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        },
    ) == ["otlp_proto_grpc"]
    assert exporter_names("traces", {"OTEL_TRACES_EXPORTER": "console,none"}) == []
    with pytest.raises(OTelConfigError, match="unsupported OTLP protocol 'http/json'"):
        exporter_names("traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_an_exporter_that_is_not_installed_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(OTelConfigError) as raised:
        OTelSink(metrics=False)
    text = str(raised.value)
    assert "'otlp_proto_grpc', which is not installed" in text
    assert "pip install opentelemetry-exporter-otlp-proto-grpc" in text
    assert "console" in text and "otlp_proto_http" in text  # what is installed


def test_spans_still_queued_are_exported_when_the_process_exits() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from penguiflow import observability
        from penguiflow.observability import Event
        from penguiflow.plugins import load_hooks, reset_hooks
        from penguiflow.tracecontext import root_span

        reset_hooks(load_hooks())
        root = root_span({TRACE!r})
        event = Event("planner", "step", ts=1.0, duration_ms=5, span=root.child(),
                      parent_span_id=root.span_id, trace_id={TRACE!r})
        asyncio.run(observability.publish(event))
        # no shutdown(): the batch processor still holds the span; exit must flush it
        """
    )
    with otlp_receiver() as (receiver, url):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PENGUIFLOW_"))}
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=url,
            OTEL_METRICS_EXPORTER="none",
            OTEL_BSP_SCHEDULE_DELAY="600000",  # only the exit flush can send it in time
            PENGUIFLOW_STRICT_PLUGINS="1",
        )
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
        (span,) = receiver.wait_for_spans(1)
    assert span.name == "planner.step" and span.trace_id == TRACE


class _StuckExporter(SpanExporter):
    """An exporter whose export blocks until released: a collector that never answers."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(60)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.release.set()


@pytest.mark.anyio
async def test_shutdown_stops_waiting_for_an_export_that_hangs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = _StuckExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    sink = OTelSink(tracer_provider=provider, metrics=False, shutdown_timeout_s=0.2)
    try:
        for event in run_events():
            await sink(event)
        with caplog.at_level(logging.WARNING, logger="penguiflow_otel"):
            assert sink.shutdown() is False
        assert exporter.entered.is_set()  # it was exporting, and we did not wait for it
        assert "did not finish within 0.2s" in caplog.text
        assert "PENGUIFLOW_OTEL_SHUTDOWN_TIMEOUT_S" in caplog.text
        assert sink.shutdown() is True  # idempotent: nothing left to wait for
    finally:
        exporter.release.set()
        provider.shutdown()


def test_the_shutdown_bound_comes_from_the_environment_or_the_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert penguiflow_otel.shutdown_timeout_s({}) == penguiflow_otel.DEFAULT_SHUTDOWN_TIMEOUT_S
    assert penguiflow_otel.shutdown_timeout_s({"PENGUIFLOW_OTEL_SHUTDOWN_TIMEOUT_S": "1.5"}) == 1.5
    with pytest.raises(OTelConfigError, match="PENGUIFLOW_OTEL_SHUTDOWN_TIMEOUT_S='soon'"):
        penguiflow_otel.shutdown_timeout_s({"PENGUIFLOW_OTEL_SHUTDOWN_TIMEOUT_S": "soon"})
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    penguiflow_otel.shutdown()
    sink = default_sink({"otel": {"shutdown_timeout_s": 2}})
    assert sink is not None and sink.shutdown_timeout_s == 2.0
    penguiflow_otel.shutdown()
    with pytest.raises(OTelConfigError, match="shutdown_timeout_s must be a number"):
        default_sink({"otel": {"shutdown_timeout_s": "2s"}})


def test_a_process_exits_promptly_when_no_collector_answers() -> None:
    """Regression: a worker whose collector was down took over 15 s to exit (the exporters
    retry for their own timeout at each flush); the exit flush is bounded and says so."""
    script = textwrap.dedent(
        f"""
        import asyncio
        from penguiflow import observability
        from penguiflow.observability import Event
        from penguiflow.plugins import load_hooks, reset_hooks
        from penguiflow.tracecontext import root_span

        reset_hooks(load_hooks())
        root = root_span({TRACE!r})
        event = Event("planner", "step", ts=1.0, duration_ms=5, span=root.child(),
                      parent_span_id=root.span_id, trace_id={TRACE!r})
        asyncio.run(observability.publish(event))
        """
    )
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PENGUIFLOW_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_TIMEOUT="120",  # unbounded, the exit would retry for minutes
        OTEL_METRICS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="600000",
        PENGUIFLOW_OTEL_SHUTDOWN_TIMEOUT_S="0.5",
        PENGUIFLOW_STRICT_PLUGINS="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    assert "did not finish within 0.5s" in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
