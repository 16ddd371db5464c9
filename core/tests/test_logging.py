"""Log lines carry the trace and span ids of the code that logged them: JSON and text, the
filter that stamps them where a record is logged, the commands' setup, and a real flow whose
node logs inside its own span."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import queue
from collections.abc import Iterator
from typing import Any

import pytest

from penguiflow import Message, Node, NodePolicy, create
from penguiflow._engine import current_trace
from penguiflow.errors import ConfigurationError
from penguiflow.logging import (
    ExtraFormatter,
    StructuredFormatter,
    TraceContextFilter,
    configure_command_logging,
    configure_logging,
    trace_ids,
)
from penguiflow.observability import Event, add_event_sink
from penguiflow.tracecontext import SpanContext, using_span
from penguiflow.types import Headers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
PF_TRACE = "0af7651916cd43dd8448eb211c80319c"


def record(msg: str = "hello", **extra: Any) -> logging.LogRecord:
    rec = logging.makeLogRecord(
        {"name": "penguiflow.test", "levelno": 20, "levelname": "INFO", "msg": msg}
    )
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


@pytest.fixture
def in_trace() -> Iterator[None]:
    token = current_trace.set(PF_TRACE)
    try:
        with using_span(SpanContext(TRACE, SPAN)):
            yield
    finally:
        current_trace.reset(token)


def test_trace_ids_outside_and_inside() -> None:
    assert trace_ids() == {}
    with using_span(SpanContext(TRACE, SPAN)):
        assert trace_ids() == {"trace_id": TRACE, "span_id": SPAN}
    token = current_trace.set(PF_TRACE)
    try:
        assert trace_ids() == {"penguiflow_trace_id": PF_TRACE}
    finally:
        current_trace.reset(token)


def test_json_lines_carry_the_ids_at_the_top(in_trace: None) -> None:
    body = json.loads(StructuredFormatter().format(record(node_name="n")))
    assert body["trace_id"] == TRACE and body["span_id"] == SPAN
    assert body["penguiflow_trace_id"] == PF_TRACE
    # The ids are not extras: an event's own `trace_id` extra stays in `extra`.
    assert body["extra"] == {"node_name": "n"}
    body = json.loads(StructuredFormatter().format(record(trace_id="event's own")))
    assert body["trace_id"] == TRACE and body["extra"] == {"trace_id": "event's own"}


def test_json_lines_outside_a_span_have_no_ids() -> None:
    body = json.loads(StructuredFormatter().format(record()))
    assert not {"trace_id", "span_id", "penguiflow_trace_id"} & set(body)


def test_text_lines_show_the_ids_when_present(in_trace: None) -> None:
    text = ExtraFormatter("%(message)s").format(record(node="n"))
    assert text == (
        f'hello [node="n"] trace_id={TRACE} span_id={SPAN} penguiflow_trace_id={PF_TRACE}'
    )


def test_text_lines_say_a_trace_id_once_when_both_are_the_same() -> None:
    token = current_trace.set(TRACE)
    try:
        with using_span(SpanContext(TRACE, SPAN)):
            text = ExtraFormatter("%(message)s").format(record())
    finally:
        current_trace.reset(token)
    assert text == f"hello trace_id={TRACE} span_id={SPAN}"
    assert ExtraFormatter("%(message)s").format(record()) == "hello"


def test_the_filter_keeps_the_ids_of_where_the_record_was_logged() -> None:
    """A QueueHandler hands records to another thread: the ids must be stamped before."""
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    handler = logging.handlers.QueueHandler(records)
    handler.addFilter(TraceContextFilter())
    logger = logging.getLogger("penguiflow.test.queue")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with using_span(SpanContext(TRACE, SPAN)):
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = records.get_nowait(), records.get_nowait()
    # Formatted here, outside any span, as the listener thread would.
    assert json.loads(StructuredFormatter().format(inside))["span_id"] == SPAN
    assert "span_id" not in json.loads(StructuredFormatter().format(outside))


def test_configure_logging_writes_to_the_stream_given() -> None:
    stream = io.StringIO()
    logger = configure_logging("INFO", structured=True, logger_name="penguiflow.t1", stream=stream)
    try:
        with using_span(SpanContext(TRACE, SPAN)):
            logger.info("step", extra={"node_name": "a"})
        line = json.loads(stream.getvalue())
        assert line["message"] == "step" and line["span_id"] == SPAN
        assert line["extra"] == {"node_name": "a"}
    finally:
        logger.handlers.clear()


def test_configure_command_logging_sets_up_every_logger() -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), root.propagate)
    stream = io.StringIO()
    try:
        configure_command_logging("warning", "json", stream=stream)
        logging.getLogger("uvicorn.error").warning("from a library")
        logging.getLogger("penguiflow_redis.worker").info("below the level")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [(x["logger"], x["message"]) for x in lines] == [("uvicorn.error", "from a library")]
        configure_command_logging("INFO", "text", stream=stream)
        assert isinstance(root.handlers[0].formatter, ExtraFormatter)
        with pytest.raises(ConfigurationError, match="'xml' is not one of text, json"):
            configure_command_logging("INFO", "xml")
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
        root.propagate = saved[2]


async def test_a_node_logs_with_its_own_span_ids() -> None:
    """End to end: with a sink listening the engine runs each node inside its span, and the
    node's log line carries that span, the one its flow.node_success event reports."""
    events: list[Event] = []

    async def collect(event: Event) -> None:
        events.append(event)

    async def shout(message: Message, ctx: Any) -> Message:
        logging.getLogger("penguiflow.test.node").warning("shouting %s", message.payload)
        return message.model_copy(update={"payload": str(message.payload).upper()})

    stream = io.StringIO()
    logger = configure_logging(
        "INFO", structured=True, logger_name="penguiflow.test.node", stream=stream
    )
    remove = add_event_sink(collect)
    node = Node(shout, name="shout", policy=NodePolicy(validate="none"))
    flow = create(node.to())
    flow.run()
    sent = Message(payload="hi", headers=Headers(tenant="acme"))
    try:
        await flow.emit(sent)
        await flow.fetch()
    finally:
        await flow.stop()
        remove()
        logger.handlers.clear()
    (done,) = [e for e in events if e.qualified_name == "flow.node_success"]
    assert done.span is not None
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["message"] == "shouting hi"
    assert line["trace_id"] == done.span.trace_id
    assert line["span_id"] == done.span.span_id
    assert line["penguiflow_trace_id"] == sent.trace_id
