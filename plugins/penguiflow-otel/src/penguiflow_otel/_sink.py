"""The event sink: PenguiFlow events to OpenTelemetry spans and metrics."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from penguiflow.errors import InvalidTypeError, describe_exception
from penguiflow.observability import Event
from penguiflow.resources import AsyncResource

from ._exporters import load_exporters
from ._metrics import EventMetrics
from ._spans import SpanConverter

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT_S",
    "SCOPE",
    "SHUTDOWN_TIMEOUT_ENV",
    "OTelSink",
    "default_sink",
    "sdk_disabled",
    "shutdown",
    "shutdown_timeout_s",
]

logger = logging.getLogger("penguiflow_otel")

_Provider = TypeVar("_Provider", TracerProvider, MeterProvider)

#: the instrumentation scope of every span and metric this plugin makes
SCOPE = "penguiflow"

#: how long `OTelSink.shutdown()` (and so a process's exit) waits for the last export
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
#: the environment variable that changes it (seconds; 0 or less: do not wait at all)
SHUTDOWN_TIMEOUT_ENV = "PENGUIFLOW_OTEL_SHUTDOWN_TIMEOUT_S"


def _penguiflow_version() -> str | None:
    try:
        return version("penguiflow")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return None


def sdk_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `OTEL_SDK_DISABLED` turns OpenTelemetry off (the SDK's own rule: "true",
    any case)."""
    environ = os.environ if environ is None else environ
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def shutdown_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """The exit flush's bound from `PENGUIFLOW_OTEL_SHUTDOWN_TIMEOUT_S` (default 5 s)."""
    from ._exporters import OTelConfigError

    environ = os.environ if environ is None else environ
    raw = environ.get(SHUTDOWN_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_SHUTDOWN_TIMEOUT_S
    try:
        return float(raw)
    except ValueError:
        raise OTelConfigError(
            f"{SHUTDOWN_TIMEOUT_ENV}={raw!r} is not a number of seconds; set it to e.g. 5, "
            "or unset it for the default"
        ) from None


def _span_processor(provider: TracerProvider) -> SpanProcessor:
    # The SDK has no public way to hand a finished span to a provider's processors (its
    # tracer makes spans with ids of its own choosing); its one composite processor is the
    # attribute every TracerProvider has had since 1.0.
    processor = getattr(provider, "_active_span_processor", None)
    if not isinstance(processor, SpanProcessor):
        raise InvalidTypeError(
            f"{type(provider).__name__} has no span processors this plugin can reach; pass an "
            "opentelemetry.sdk.trace.TracerProvider"
        )
    return processor


def _tracer_provider_from_env() -> TracerProvider | None:
    exporters = load_exporters("traces")
    if not exporters:
        return None
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the batch
    # processor reads OTEL_BSP_*; each exporter its OTEL_EXPORTER_* settings.
    # The sink shuts its providers down itself, within a bound: the SDK's own exit hook
    # would wait on an unreachable collector for as long as the exporters retry.
    provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
    for exporter in exporters:
        assert isinstance(exporter, SpanExporter)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _meter_provider_from_env() -> MeterProvider | None:
    exporters = load_exporters("metrics")
    if not exporters:
        return None
    readers = []
    for exporter in exporters:
        assert isinstance(exporter, MetricExporter)
        # reads OTEL_METRIC_EXPORT_INTERVAL / OTEL_METRIC_EXPORT_TIMEOUT
        readers.append(PeriodicExportingMetricReader(exporter))
    return MeterProvider(metric_readers=readers, resource=Resource.create(), shutdown_on_exit=False)


class OTelSink(AsyncResource):
    """An event sink (`penguiflow.observability.EventSink`) exporting to OpenTelemetry.

    Events that are units of work become spans with the kernel's own trace, span and parent
    ids and times, handed to `tracer_provider`'s span processors; events update the
    instruments of `penguiflow_otel.METRIC_NAMES` on a meter of `meter_provider`.

    Providers left out are, in order: the application's global SDK provider (one set with
    `trace.set_tracer_provider` / `metrics.set_meter_provider`), else one built from the
    standard `OTEL_*` variables (`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`,
    `OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`...),
    owned by the sink and shut down with it. `traces=False` / `metrics=False` turn one off.

    Calling the sink never blocks on the network: spans go to a batch processor's queue
    (built from the environment: `BatchSpanProcessor`), metrics to in-memory aggregations.
    `force_flush()` exports what is queued, `shutdown()` (or `aclose()`) flushes and stops;
    both are idempotent, and a sink still open at interpreter exit is shut down then.

    `shutdown()` waits at most `shutdown_timeout_s` (default: `PENGUIFLOW_OTEL_SHUTDOWN_TIMEOUT_S`,
    else 5 s): the OTLP exporters retry an unreachable collector for up to their own timeout per
    export, so an unbounded exit flush kept a stopping worker alive for tens of seconds. Spans
    not exported by then are lost, and a warning says how many seconds were waited and where.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: ApiMeterProvider | None = None,
        traces: bool = True,
        metrics: bool = True,
        max_metric_values: int = 200,
        shutdown_timeout_s: float | None = None,
    ) -> None:
        self.shutdown_timeout_s = (
            _shutdown_timeout_from_env() if shutdown_timeout_s is None else shutdown_timeout_s
        )
        self._owned: list[TracerProvider | MeterProvider] = []
        self._closed = False
        self._lock = threading.Lock()
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: ApiMeterProvider | None = None
        self._processor: SpanProcessor | None = None
        self._converter: SpanConverter | None = None
        self._metrics: EventMetrics | None = None
        scope_version = _penguiflow_version()
        if traces:
            provider = tracer_provider
            if provider is None:
                provider = self._global_tracer_provider() or self._own(_tracer_provider_from_env())
            if provider is not None:
                self.tracer_provider = provider
                self._processor = _span_processor(provider)
                scope = InstrumentationScope(SCOPE, scope_version)
                self._converter = SpanConverter(provider.resource, scope)
        if metrics:
            meters = meter_provider
            if meters is None:
                meters = self._global_meter_provider() or self._own(_meter_provider_from_env())
            if meters is not None:
                self.meter_provider = meters
                meter = meters.get_meter(SCOPE, scope_version)
                self._metrics = EventMetrics(meter, max_values=max_metric_values)
        atexit.register(self.shutdown)

    @staticmethod
    def _global_tracer_provider() -> TracerProvider | None:
        provider = trace_api.get_tracer_provider()
        return provider if isinstance(provider, TracerProvider) else None

    @staticmethod
    def _global_meter_provider() -> MeterProvider | None:
        provider = metrics_api.get_meter_provider()
        return provider if isinstance(provider, MeterProvider) else None

    def _own(self, provider: _Provider | None) -> _Provider | None:
        if provider is not None:
            self._owned.append(provider)
        return provider

    @property
    def exports(self) -> bool:
        """Whether the sink exports anything (traces or metrics)."""
        return self._processor is not None or self._metrics is not None

    @property
    def dropped_events(self) -> int:
        """Point events that could not be attached to a span (see `_spans`)."""
        return self._converter.dropped_events if self._converter is not None else 0

    async def __call__(self, event: Event) -> None:
        if self._closed:
            return
        converter = self._converter
        if converter is not None:
            processor = self._processor
            assert processor is not None
            span = converter.convert(event)
            if span is not None:
                processor.on_end(span)
        if self._metrics is not None:
            self._metrics.record(event)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued now (blocking, up to `timeout_millis` per provider);
        True when every provider finished in time."""
        done = True
        if self.tracer_provider is not None:
            done = self.tracer_provider.force_flush(timeout_millis) and done
        if isinstance(self.meter_provider, MeterProvider):
            done = self.meter_provider.force_flush(timeout_millis) and done
        return done

    async def aflush(self, timeout_millis: int = 30_000) -> bool:
        """`force_flush` in a worker thread, so the event loop goes on meanwhile."""
        return await asyncio.to_thread(self.force_flush, timeout_millis)

    def shutdown(self, timeout_s: float | None = None) -> bool:
        """Flush, then shut down the providers the sink built itself (an application's own
        providers are only flushed: they are the application's to shut down), waiting at most
        `timeout_s` (default `self.shutdown_timeout_s`). True when everything finished in
        time. Idempotent; the sink ignores events from then on."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        atexit.unregister(self.shutdown)
        bound = self.shutdown_timeout_s if timeout_s is None else timeout_s
        # The exporters block (retrying) while a collector is unreachable, and a thread stuck
        # in a socket cannot be interrupted: the flush runs in a daemon thread we stop waiting
        # for, so neither an exit nor an aclose() hangs on the network.
        finished = threading.Event()

        def run() -> None:
            try:
                self._flush_and_stop(max(bound, 0.0))
            finally:
                finished.set()

        try:
            threading.Thread(target=run, name="penguiflow-otel:shutdown", daemon=True).start()
        except RuntimeError:  # no new threads this late in interpreter shutdown
            run()
        if finished.wait(max(bound, 0.0)):
            return True
        logger.warning(
            "penguiflow-otel: the last export did not finish within %gs (is the collector at "
            "%s reachable?); spans and metrics not yet exported are dropped. Raise %s to wait "
            "longer",
            bound,
            _endpoint_hint(),
            SHUTDOWN_TIMEOUT_ENV,
        )
        return False

    def _flush_and_stop(self, bound: float) -> None:
        try:
            self.force_flush(int(bound * 1000))
        except Exception as exc:  # exit paths must go on to shut the providers down
            logger.warning("penguiflow-otel: flushing failed: %s", describe_exception(exc))
        for provider in self._owned:
            try:
                provider.shutdown()
            except Exception as exc:
                logger.warning(
                    "penguiflow-otel: shutting down %s failed: %s",
                    type(provider).__name__,
                    describe_exception(exc),
                )

    async def aclose(self) -> None:
        """`shutdown()` in a worker thread (it may wait on the network)."""
        if not self._closed:
            await asyncio.to_thread(self.shutdown)


# `OTelSink.__init__` has a parameter of the same name as `shutdown_timeout_s`.
_shutdown_timeout_from_env = shutdown_timeout_s


def _endpoint_hint() -> str:
    """Where spans go, for messages: the OTLP endpoint the environment names."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = os.environ.get(name, "").strip()
        if value:
            from penguiflow.resources import redact_url

            return redact_url(value)
    return "the OTLP default, http://localhost:4318"


_default: OTelSink | None = None
_default_lock = threading.Lock()


def default_sink(config: Mapping[str, Any] | None = None) -> OTelSink | None:
    """The process's sink for the `penguiflow_event_sinks` hook, built on first use from the
    environment and `config["otel"]` (`traces`, `metrics`: booleans); None when
    `OTEL_SDK_DISABLED=true` or nothing is configured to export. The same sink is returned
    while it is open, so reloading the hooks does not build new providers."""
    global _default
    if sdk_disabled():
        return None
    section = (config or {}).get("otel") or {}
    if not isinstance(section, Mapping):
        from ._exporters import OTelConfigError

        raise OTelConfigError(
            f"the [otel] plugin configuration must be a table, got {type(section).__name__}"
        )
    timeout = section.get("shutdown_timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        from ._exporters import OTelConfigError

        raise OTelConfigError(
            f"[otel] shutdown_timeout_s must be a number of seconds, got {timeout!r}"
        )
    with _default_lock:
        if _default is None or _default._closed:
            _default = OTelSink(
                traces=bool(section.get("traces", True)),
                metrics=bool(section.get("metrics", True)),
                shutdown_timeout_s=None if timeout is None else float(timeout),
            )
        sink = _default
    return sink if sink.exports else None


def shutdown(timeout_s: float | None = None) -> bool:
    """Flush and shut down the hook's sink (`default_sink`), if one was built, waiting at
    most `timeout_s` (default: the sink's `shutdown_timeout_s`); idempotent. True when
    everything was exported in time (or there was nothing to shut down)."""
    global _default
    with _default_lock:
        sink, _default = _default, None
    if sink is None:
        return True
    return sink.shutdown(timeout_s)
