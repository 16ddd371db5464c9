"""Middlewares, debug formatting and logging formatters (spec §1.22, §1.23, §1.27)."""

from __future__ import annotations

import json
import logging
from types import MappingProxyType
from typing import Any

import pytest

from penguiflow.debug import format_flow_event
from penguiflow.logging import ExtraFormatter, StructuredFormatter, configure_logging
from penguiflow.metrics import FlowEvent
from penguiflow.middlewares import log_flow_events


def make_event(event_type: str = "node_success", **extra: Any) -> FlowEvent:
    return FlowEvent(
        event_type=event_type,
        ts=1.0,
        node_name="n",
        node_id="id",
        trace_id="t",
        attempt=1,
        latency_ms=2.5,
        queue_depth_in=1,
        queue_depth_out=2,
        outgoing_edges=1,
        queue_maxsize=64,
        trace_pending=3,
        trace_inflight=1,
        trace_cancelled=False,
        extra=extra,
    )


def test_flow_event_views() -> None:
    event = make_event(flow_error={"code": "X"}, latency_ms="7", flag=True, obj=object())
    assert isinstance(event.extra, MappingProxyType) and event.queue_depth == 3
    assert event.error_payload == {"code": "X"}
    with pytest.raises(TypeError):
        event.error_payload["code"] = "Y"  # type: ignore[index]
    payload = event.to_payload()
    assert payload["event"] == "node_success" and payload["q_depth_total"] == 3
    assert payload["trace_pending"] == 3
    samples = event.metric_samples()
    assert samples["latency_ms"] == 7.0 and samples["trace_cancelled"] == 0.0
    tags = event.tag_values()
    assert tags["flag"] == "True" and "obj" not in tags and tags["trace_id"] == "t"


def test_format_flow_event_flattens_errors() -> None:
    formatted = format_flow_event(make_event("node_failed", flow_error={"code": "NODE_TIMEOUT"}))
    assert formatted["flow_error"] == {"code": "NODE_TIMEOUT"}
    assert formatted["flow_error_code"] == "NODE_TIMEOUT"
    assert "flow_error" not in format_flow_event(make_event())


async def test_log_flow_events(caplog: pytest.LogCaptureFixture) -> None:
    latencies: list[tuple[str, float]] = []

    def callback(kind: str, latency: float, event: FlowEvent) -> None:
        latencies.append((kind, latency))
        raise RuntimeError("callback bug")

    middleware = log_flow_events(latency_callback=callback)
    with caplog.at_level(logging.DEBUG, logger="penguiflow.flow"):
        await middleware(make_event("node_start"))
        await middleware(make_event("node_success"))
        await middleware(make_event("node_error", flow_error={"code": "E"}))
        await middleware(make_event("node_retry"))
    messages = [r.message for r in caplog.records]
    assert messages[:3] == ["node_start", "node_success", "log_flow_events_latency_callback_error"]
    # Regression: the record's `event` was the failing event's type; PenguiFlow's is the
    # record's own name, like every other record's `event`.
    name = "log_flow_events_latency_callback_error"
    failures = [vars(r) for r in caplog.records if r.message == name]
    assert [f["event"] for f in failures] == [name, name]
    assert failures[0]["node_name"] == "n" and failures[0]["trace_id"] == "t"
    assert failures[0]["exc_info"] is not None
    assert "node_retry" not in messages
    error_record = next(r for r in caplog.records if r.message == "node_error")
    assert error_record.levelno == logging.ERROR
    assert error_record.error_payload == {"code": "E"}  # type: ignore[attr-defined]
    assert latencies == [("node_success", 2.5), ("node_error", 2.5)]


def record(**extra: Any) -> logging.LogRecord:
    rec = logging.makeLogRecord(
        {"name": "penguiflow.core", "levelno": 20, "levelname": "INFO", "msg": "node_success"}
    )
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_structured_formatter() -> None:
    line = StructuredFormatter().format(record(node_name="n", obj=object()))
    body = json.loads(line)
    assert body["level"] == "INFO" and body["logger"] == "penguiflow.core"
    assert body["message"] == "node_success" and body["timestamp"].endswith("+00:00")
    assert body["extra"]["node_name"] == "n" and body["extra"]["obj"].startswith("<object")
    assert "timestamp" not in json.loads(
        StructuredFormatter(include_timestamp=False).format(record())
    )
    try:
        raise ValueError("x")
    except ValueError:
        import sys

        rec = record()
        rec.exc_info = sys.exc_info()
    assert "ValueError" in json.loads(StructuredFormatter().format(rec))["exception"]


def test_extra_formatter() -> None:
    formatter = ExtraFormatter("%(message)s")
    assert formatter.format(record()) == "node_success"
    text = formatter.format(record(node="n", attempt=2, long="x" * 150))
    assert text.startswith('node_success [node="n", attempt=2, long="')
    assert text.endswith("x" * 100 + '..."]')


def test_configure_logging() -> None:
    logger = configure_logging("debug", structured=True, logger_name="penguiflow.test")
    assert logger.level == logging.DEBUG and not logger.propagate
    assert isinstance(logger.handlers[0].formatter, StructuredFormatter)
    logger = configure_logging(logging.WARNING, include_extras=False, logger_name="penguiflow.test")
    assert len(logger.handlers) == 1 and type(logger.handlers[0].formatter) is logging.Formatter
    logger = configure_logging(logger_name="penguiflow.test")
    assert isinstance(logger.handlers[0].formatter, ExtraFormatter)
    logger.handlers.clear()
