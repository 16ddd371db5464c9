from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from penguiflow_otel import OTelSink

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test depends on what is installed or on the developer's OTEL_* settings: hook
    autoload is off unless a test installs a host, and nothing exports by default."""
    from penguiflow.plugins import AUTOLOAD_ENV, reset_hooks

    monkeypatch.setenv(AUTOLOAD_ENV, "0")
    monkeypatch.delenv("PENGUIFLOW_DISABLE_PLUGINS", raising=False)
    for name in [n for n in __import__("os").environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    reset_hooks()
    yield
    reset_hooks()
    import penguiflow_otel

    penguiflow_otel.shutdown()


@pytest.fixture(scope="session")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server's URL (see mlflow_server.py), one per session: it takes
    a minute to start. Skips the test without mlflow (fails it under PENGUIFLOW_OTEL_MLFLOW=1)."""
    from mlflow_server import serve_mlflow

    yield from serve_mlflow(tmp_path_factory.mktemp("mlflow"))


@dataclass
class Exported:
    """A sink exporting to memory: `spans.get_finished_spans()`, `metrics.get_metrics_data()`."""

    sink: OTelSink
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader


@pytest.fixture
def exported() -> Iterator[Exported]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "test"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    sink = OTelSink(tracer_provider=tracer_provider, meter_provider=MeterProvider([reader]))
    yield Exported(sink, spans, reader)
    sink.shutdown()
    tracer_provider.shutdown()
