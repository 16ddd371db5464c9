"""The Event envelope, event sinks (hook and code), and what the local runtime publishes.

(`test_observability.py` holds the older middleware and logging tests.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from penguiflow.core import create
from penguiflow.errors import InvalidTypeError, UsageError
from penguiflow.hookspecs import hookimpl
from penguiflow.metrics import FlowEvent
from penguiflow.node import Node, NodePolicy
from penguiflow.observability import Event, add_event_sink, enabled, event_sinks, publish
from penguiflow.plugins import PluginSettings, load_hooks, reset_hooks
from penguiflow.tracecontext import TRACEPARENT, SpanContext, root_span, using_span
from penguiflow.types import Headers, Message

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def named(self, name: str, node: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.qualified_name == name and (node is None or e.attributes["node_name"] == node)
        ]


@pytest.fixture
def sink() -> Iterator[Collect]:
    collect = Collect()
    remove = add_event_sink(collect)
    try:
        yield collect
    finally:
        remove()


def host_with(*plugins: object, strict: bool = False) -> Any:
    settings = PluginSettings(disabled=frozenset({"penguiflow:*"}), strict=strict)
    return load_hooks(settings, extra=list(plugins))


def flow_event(event_type: str = "node_success", latency: float | None = 2.5) -> FlowEvent:
    return FlowEvent(
        event_type=event_type,
        ts=1000.0,
        node_name="n",
        node_id="id",
        trace_id="t",
        attempt=1,
        latency_ms=latency,
        queue_depth_in=1,
        queue_depth_out=2,
        outgoing_edges=1,
        queue_maxsize=64,
        trace_pending=None,
        trace_inflight=1,
        trace_cancelled=False,
        extra={"exception": "ValueError('x')", "nested": {"a": [1, 2]}},
    )


# -- the envelope ------------------------------------------------------------------------------


def test_event_is_immutable() -> None:
    attributes = {"tool": "search"}
    event = Event("tool", "call", attributes=attributes, measurements={"n": 1.0})
    attributes["tool"] = "changed"  # the event took a copy
    assert event.attributes["tool"] == "search" and event.qualified_name == "tool.call"
    with pytest.raises(TypeError):
        event.attributes["tool"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        event.measurements["n"] = 2.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        event.name = "other"  # type: ignore[misc]
    assert Event("tool", "call", attributes={"error": ValueError("boom")}).error == "boom"
    assert event.error is None


@pytest.mark.parametrize(
    ("event_type", "latency"),
    [
        ("node_success", 2.5),
        ("node_error", 0.25),
        ("node_timeout", 1000.0),
        ("node_failed", 3.0),
        ("node_start", 0.0),
        ("node_retry", None),
    ],
)
def test_flow_events_round_trip_equal(event_type: str, latency: float | None) -> None:
    original = flow_event(event_type, latency)
    span = SpanContext(TRACE, SPAN, True, "a" * 16)
    envelope = Event.from_flow_event(original, span=span, parent_span_id="a" * 16, tenant="acme")
    assert envelope.family == "flow" and envelope.name == event_type
    assert envelope.span == span and envelope.tenant == "acme" and envelope.trace_id == "t"
    assert envelope.to_flow_event() == original


def test_only_the_end_of_an_invocation_is_a_unit_of_work() -> None:
    done = Event.from_flow_event(flow_event("node_success", 2500.0))
    # ts is when the invocation started; the FlowEvent's own time is kept.
    assert done.duration_ms == 2500.0 and done.ts == pytest.approx(997.5)
    assert done.attributes["recorded_ts"] == 1000.0
    # node_failed repeats the last attempt's latency: not a second span for one invocation.
    failed = Event.from_flow_event(flow_event("node_failed", 3.0))
    assert failed.duration_ms is None and failed.ts == 1000.0
    assert failed.attributes["latency_ms"] == 3.0
    start = Event.from_flow_event(flow_event("node_start", 0.0))
    assert start.duration_ms is None


def test_only_flow_events_convert_back() -> None:
    with pytest.raises(UsageError, match="only flow events"):
        Event("llm", "call").to_flow_event()


# -- sinks -------------------------------------------------------------------------------------


async def test_sinks_from_the_hook_and_from_code_receive_events(sink: Collect) -> None:
    hooked = Collect()
    configs: list[dict[str, Any]] = []

    class Plugin:
        @hookimpl
        def penguiflow_event_sinks(self, config: dict[str, Any]) -> list[Any]:
            configs.append(config)
            return [hooked]

    reset_hooks(host_with(Plugin()))
    try:
        assert event_sinks() == (hooked, sink) and enabled()
        await publish(Event("tool", "call"))
        assert [e.name for e in hooked.events] == ["call"] == [e.name for e in sink.events]
        assert len(configs) == 1
        event_sinks()
        assert len(configs) == 1  # asked once per host, not per event
    finally:
        reset_hooks(None)
    # The host is gone: so are its sinks; the one added in code stays.
    assert event_sinks() == (sink,)
    await publish(Event("tool", "call"))
    assert len(hooked.events) == 1 and len(sink.events) == 2


async def test_a_new_host_is_read_again() -> None:
    first, second = Collect(), Collect()

    class One:
        @hookimpl
        def penguiflow_event_sinks(self, config: dict[str, Any]) -> list[Any]:
            return [first]

    class Two:
        @hookimpl
        def penguiflow_event_sinks(self) -> list[Any]:  # pluggy lets it name no argument
            return [second]

    reset_hooks(host_with(One()))
    try:
        assert event_sinks() == (first,)
        reset_hooks(host_with(Two()))
        assert event_sinks() == (second,)
    finally:
        reset_hooks(None)
    assert not enabled()


async def test_a_failing_sink_is_logged_and_the_others_still_served(
    sink: Collect, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        async def __call__(self, event: Event) -> None:
            raise RuntimeError("exporter down")

        def __repr__(self) -> str:
            raise RuntimeError("repr fails too")

    remove = add_event_sink(Broken())
    after = Collect()
    remove_after = add_event_sink(after)
    try:
        with caplog.at_level(logging.WARNING, "penguiflow.observability"):
            await publish(Event("llm", "call"))
    finally:
        remove()
        remove_after()
        remove()  # idempotent
    assert len(sink.events) == 1 and len(after.events) == 1
    assert "Broken failed on llm.call: RuntimeError: exporter down" in caplog.text


async def test_one_broken_plugin_leaves_the_others_sinks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: one raising implementation made the whole hook call fail, so no plugin's
    sinks received anything."""
    good = Collect()

    class Good:
        @hookimpl
        def penguiflow_event_sinks(self, config: dict[str, Any]) -> list[Any]:
            return [good]

    class Raises:
        @hookimpl
        def penguiflow_event_sinks(self, config: dict[str, Any]) -> list[Any]:
            raise OSError("no collector configured")

    class NotCallable:
        @hookimpl
        def penguiflow_event_sinks(self, config: dict[str, Any]) -> list[Any]:
            return ["not a sink"]

    reset_hooks(host_with(Good(), Raises(), NotCallable()))
    try:
        with caplog.at_level(logging.ERROR, "penguiflow.observability"):
            assert event_sinks() == (good,)
        assert "OSError: no collector configured" in caplog.text
        assert "returned str 'not a sink', not an async callable" in caplog.text
        # Guarded like the lifecycle hooks: strict mode lets the plugin's error through.
        reset_hooks(host_with(Good(), Raises(), strict=True))
        with pytest.raises(OSError, match="no collector configured"):
            event_sinks()
    finally:
        reset_hooks(None)


def test_add_event_sink_refuses_what_cannot_be_called() -> None:
    with pytest.raises(InvalidTypeError, match="async callable taking an Event"):
        add_event_sink("not callable")  # type: ignore[arg-type]


# -- what the local runtime publishes ----------------------------------------------------------


async def passthrough(message: Message, ctx: Any) -> Message:
    return message


def chain(*names: str) -> list[Node]:
    return [Node(passthrough, name=name, policy=NodePolicy(validate="none")) for name in names]


def message(**kwargs: Any) -> Message:
    return Message(payload="hello", headers=Headers(tenant="acme"), **kwargs)


async def test_without_sinks_nothing_is_stamped() -> None:
    a, b = chain("a", "b")
    flow = create(a.to(b), b.to())
    flow.run()
    try:
        await flow.emit(message())
        result = await flow.fetch()
    finally:
        await flow.stop()
    assert TRACEPARENT not in result.meta


async def test_node_invocations_are_spans_chained_across_nodes(sink: Collect) -> None:
    a, b = chain("a", "b")
    flow = create(a.to(b), b.to())
    flow.run()
    sent = message()
    try:
        await flow.emit(sent)
        result = await flow.fetch()
    finally:
        await flow.stop()
    root = root_span(sent.trace_id)
    (done_a,) = sink.named("flow.node_success", "a")
    (done_b,) = sink.named("flow.node_success", "b")
    assert done_a.span is not None and done_b.span is not None
    assert done_a.span.trace_id == done_b.span.trace_id == root.trace_id
    assert done_a.parent_span_id == root.span_id  # no traceparent: under the root span
    assert done_b.parent_span_id == done_a.span.span_id  # b ran under a
    assert done_a.duration_ms is not None and done_a.tenant == "acme"
    assert done_a.trace_id == sent.trace_id
    # node_start is a point in the same span, not a span of its own.
    (start_a,) = sink.named("flow.node_start", "a")
    assert start_a.span == done_a.span and start_a.duration_ms is None
    assert start_a.ts <= done_a.ts + done_a.duration_ms / 1000
    # The result carries b's span; what the user sent was not changed.
    assert result.meta[TRACEPARENT] == done_b.span.traceparent
    assert sent.meta == {}


async def test_emit_inside_a_span_joins_that_trace() -> None:
    """Even with no sink in this process, the caller's span travels with the message."""
    a, b = chain("a", "b")
    flow = create(a.to(b), b.to())
    flow.run()
    request = SpanContext(TRACE, SPAN)
    try:
        with using_span(request):
            await flow.emit(message())
            own = message(meta={TRACEPARENT: f"00-{'c' * 32}-{'d' * 16}-01"})
            flow.emit_nowait(own)
        first, second = await flow.fetch(), await flow.fetch()
    finally:
        await flow.stop()
    carried = sorted(m.meta[TRACEPARENT] for m in (first, second))
    assert carried == sorted([request.traceparent, own.meta[TRACEPARENT]])


async def test_a_span_current_at_run_does_not_leak_into_the_workers(sink: Collect) -> None:
    a, b = chain("a", "b")
    flow = create(a.to(b), b.to())
    with using_span(SpanContext(TRACE, SPAN)):
        flow.run()
    try:
        sent = message()
        await flow.emit(sent)
        await flow.fetch()
    finally:
        await flow.stop()
    (done_a,) = sink.named("flow.node_success", "a")
    assert done_a.parent_span_id == root_span(sent.trace_id).span_id


async def test_user_set_traceparent_on_an_output_is_kept(sink: Collect) -> None:
    theirs = f"00-{'e' * 32}-{'f' * 16}-01"

    async def relink(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"meta": {**message.meta, TRACEPARENT: theirs}})

    a = Node(relink, name="a", policy=NodePolicy(validate="none"))
    (b,) = chain("b")
    flow = create(a.to(b), b.to())
    flow.run()
    try:
        await flow.emit(message())
        await flow.fetch()
    finally:
        await flow.stop()
    (done_b,) = sink.named("flow.node_success", "b")
    assert done_b.span is not None and done_b.span.trace_id == "e" * 32
    assert done_b.parent_span_id == "f" * 16


async def test_each_attempt_is_a_span_and_failures_say_why(sink: Collect) -> None:
    calls = 0

    async def flaky(message: Message, ctx: Any) -> Message:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first try fails")
        return message

    node = Node(
        flaky, name="flaky", policy=NodePolicy(validate="none", max_retries=1, backoff_base=0.0)
    )
    flow = create(node.to())
    flow.run()
    sent = message(meta={TRACEPARENT: f"00-{TRACE}-{SPAN}-01"})
    try:
        await flow.emit(sent)
        await flow.fetch()
    finally:
        await flow.stop()
    (error,) = sink.named("flow.node_error")
    (retry,) = sink.named("flow.node_retry")
    (done,) = sink.named("flow.node_success")
    assert error.span is not None and done.span is not None
    assert error.span != done.span  # a retry is a new span...
    assert error.parent_span_id == done.parent_span_id == SPAN  # ...under the same parent
    assert error.span.trace_id == TRACE and error.duration_ms is not None
    assert "first try fails" in error.attributes["extra"]["exception"]
    assert retry.span == error.span and retry.duration_ms is None


async def test_events_are_the_same_whether_or_not_a_flowevent_is_built(sink: Collect) -> None:
    """With only sinks listening the runtime builds their Event straight from the fields (no
    FlowEvent); with a middleware it converts the FlowEvent. Both must give the same Event."""

    async def maybe_fails(message: Message, ctx: Any) -> Message:
        if message.payload == "fail":
            raise ValueError("asked to fail")
        return message

    async def run(with_middleware: bool) -> list[Event]:
        seen: list[FlowEvent] = []

        async def middleware(event: FlowEvent) -> None:
            seen.append(event)

        start = len(sink.events)
        a = Node(
            maybe_fails,
            name="a",
            policy=NodePolicy(validate="none", max_retries=1, backoff_base=0.0),
        )
        (b,) = chain("b")
        flow = create(a.to(b), b.to(), middlewares=[middleware] if with_middleware else [])
        flow.run()
        try:
            await flow.emit(message())
            await flow.fetch()
            await flow.emit(Message(payload="fail", headers=Headers(tenant="acme")))
            await flow.emit(message())
            await flow.fetch()
        finally:
            await flow.stop()
        events = sink.events[start:]
        # The middleware saw the FlowEvents the sinks' Events convert back to.
        assert not with_middleware or [e.to_flow_event() for e in events] == seen
        return events

    def comparable(event: Event) -> tuple[Any, ...]:
        attributes = dict(event.attributes)
        attributes.pop("recorded_ts", None)
        extra = dict(attributes.pop("extra"))
        extra.pop("flow_error", None)  # carries the trace id
        return (
            event.family,
            event.name,
            event.duration_ms is None,
            event.trace_id is None,
            event.span is None,
            event.parent_span_id is None,
            event.tenant,
            sorted(attributes),
            {k: v for k, v in attributes.items() if k in ("node_name", "attempt", "queue_maxsize")},
            sorted(extra),
            dict(event.measurements).keys(),
            type(event.attributes),
            type(event.measurements),
        )

    direct = await run(with_middleware=False)
    converted = await run(with_middleware=True)

    def in_order(events: list[Event]) -> list[tuple[Any, ...]]:
        # Workers stop in no particular order: their node_cancelled events are compared apart.
        return [comparable(e) for e in events if e.name != "node_cancelled"]

    def stopping(events: list[Event]) -> list[str]:
        return sorted(repr(comparable(e)) for e in events if e.name == "node_cancelled")

    assert in_order(direct) == in_order(converted)
    assert stopping(direct) == stopping(converted)
    assert {e.name for e in direct} >= {"node_start", "node_success", "node_error", "node_retry"}
    for event in direct:  # read-only, like every Event
        with pytest.raises(TypeError):
            event.attributes["node_name"] = "x"  # type: ignore[index]


def test_from_flow_event_on_a_subclass_builds_the_subclass() -> None:
    class Mine(Event):
        pass

    envelope = Mine.from_flow_event(flow_event())
    assert type(envelope) is Mine and envelope.to_flow_event() == flow_event()
