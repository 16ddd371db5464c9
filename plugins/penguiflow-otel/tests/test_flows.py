"""Real flows and a real planner run, with the sink installed through a pluggy hook host (as
the entry point installs it), exported to the SDK's in-memory exporter: one trace, the
expected parent/child spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from conftest import Exported
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.hookspecs import hookimpl
from penguiflow.observability import EventSink
from penguiflow.plugins import PluginSettings, load_hooks, reset_hooks
from penguiflow.tracecontext import root_span

pytestmark = pytest.mark.anyio


class SinkPlugin:
    """A hook plugin contributing the test's sink, as penguiflow_otel.hooks contributes the
    default one."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    @hookimpl
    def penguiflow_event_sinks(self, config: dict[str, Any]) -> list[EventSink]:
        return [self.sink]


@pytest.fixture
def installed(exported: Exported) -> Iterator[Exported]:
    # Only this plugin: what else is installed in the environment does not matter here.
    settings = PluginSettings(disabled=frozenset({"*"}))
    reset_hooks(load_hooks(settings, extra=[SinkPlugin(exported.sink)]))
    yield exported
    reset_hooks()


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    assert span.context is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}", parent


async def test_a_flow_with_a_retry_is_one_trace_of_node_spans(installed: Exported) -> None:
    calls = {"a": 0}

    async def flaky(message: Message, ctx: Any) -> Message:
        calls["a"] += 1
        if calls["a"] == 1:
            raise ConnectionError("first try fails")
        return message

    async def passthrough(message: Message, ctx: Any) -> Message:
        return message

    a = Node(flaky, name="a", policy=NodePolicy(validate="none", max_retries=1, backoff_base=0))
    b = Node(passthrough, name="b", policy=NodePolicy(validate="none"))
    flow = create(a.to(b), b.to())
    flow.run()
    message = Message(payload=1, headers=Headers(tenant="acme"))
    with anyio.fail_after(20):
        await flow.emit(message)
        await flow.fetch()
    await flow.stop()
    spans = installed.spans.get_finished_spans()
    names = sorted((span.name, span.status.status_code.name) for span in spans)
    assert names == [("node a", "ERROR"), ("node a", "OK"), ("node b", "OK")]
    trace = root_span(message.trace_id)
    ids = {(s.name, s.status.status_code): hex_ids(s) for s in spans}
    failed = ids[("node a", StatusCode.ERROR)]
    a_ok = ids[("node a", StatusCode.OK)]
    b_ok = ids[("node b", StatusCode.OK)]
    assert {ids[0] for ids in ids.values()} == {trace.trace_id}
    # both attempts of a are children of the message's root span; b is the child of a's
    # successful attempt (the message a sent carried its span)
    assert failed[2] == a_ok[2] == trace.span_id
    assert b_ok[2] == a_ok[1]
    b_span = next(s for s in spans if s.name == "node b")
    assert (b_span.attributes or {})["penguiflow.tenant"] == "acme"


async def test_a_planner_run_with_a_tool_is_nested_under_its_node(installed: Exported) -> None:
    planner_module = pytest.importorskip("penguiflow_planner")
    from tools import planner_with_search

    planner = planner_with_search(planner_module)

    async def agent(message: Message, ctx: Any) -> Message:
        result = await planner.run(str(message.payload))
        return message.model_copy(update={"payload": result.payload})

    node = Node(agent, name="agent", policy=NodePolicy(validate="none"))
    flow = create(node.to())
    flow.run()
    message = Message(payload="penguins?", headers=Headers(tenant="acme"))
    with anyio.fail_after(20):
        await flow.emit(message)
        await flow.fetch()
    await flow.stop()
    exported = installed.spans.get_finished_spans()
    spans = {span.name: span for span in exported}
    assert {"node agent", "planner.run", "planner.step", "execute_tool search"} <= set(spans)
    trace = root_span(message.trace_id).trace_id
    assert {hex_ids(s)[0] for s in exported} == {trace}
    name_of = {hex_ids(s)[1]: s.name for s in exported}
    parents = sorted({(s.name, name_of.get(hex_ids(s)[2] or "", "root")) for s in exported})
    assert parents == [
        # the scripted client publishes llm.call like the HTTP adapters
        ("chat scripted", "planner.step"),
        ("execute_tool search", "planner.step"),
        ("node agent", "root"),
        ("planner.run", "node agent"),
        ("planner.step", "planner.run"),
    ]
    run_attributes = dict(spans["planner.run"].attributes or {})
    assert run_attributes["penguiflow.reason"] == "answer_complete"
    assert "penguiflow.query" not in run_attributes  # content capture is off
