"""One trace across the client and worker processes (W3C trace context in the envelopes)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from distributed_app import Job, build
from workers import WorkerProcesses

from penguiflow import Headers, Message
from penguiflow.testing import run_async
from penguiflow.tracecontext import TRACEPARENT, SpanContext, using_span

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def traced_workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    events = tmp_path / "events"
    events.mkdir()
    pool = WorkerProcesses(redis_url, tmp_path, env={"PF_TEST_EVENTS": str(events)})
    pool.events = events  # type: ignore[attr-defined]
    yield pool
    pool.stop_all()


def read_events(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("events-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


async def wait_for_events(folder: Path, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll the workers' event files until `count` node_success events arrived (a worker
    publishes its events after sending the result, so the client may see the answer first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        events = read_events(folder)
        if sum(e["name"] == "flow.node_success" for e in events) >= count:
            return events
        if loop.time() > deadline:
            raise AssertionError(f"only these events arrived: {events}")
        await asyncio.sleep(0.05)


def test_one_trace_across_the_client_and_two_workers(traced_workers: WorkerProcesses) -> None:
    url = f"{traced_workers.url}?flow_name=test-{uuid.uuid4().hex[:10]}"
    # One node per worker: with chaining, a worker serving both would run `finish` itself, and
    # the crossing through Redis this test is about would depend on timing.
    first = traced_workers.start("--node", "work", url=url, target="traced_app:build")
    second = traced_workers.start("--node", "finish", url=url, target="traced_app:build")
    folder: Path = traced_workers.events  # type: ignore[attr-defined]
    request = SpanContext(CLIENT_TRACE, CLIENT_SPAN)
    count = 16

    async def scenario() -> None:
        flow = build(runtime=url)
        flow.run()
        try:
            with using_span(request):  # a web request's span, say
                for n in range(count):
                    message = Message(payload=Job(n=n, delay=0.02), headers=Headers(tenant="t1"))
                    await flow.emit(message)
            answers = [await asyncio.wait_for(flow.fetch(), 30) for _ in range(count)]
        finally:
            await flow.stop()
        # The answer carries the span of the last node that handled it.
        assert all(a.meta[TRACEPARENT].split("-")[1] == CLIENT_TRACE for a in answers)
        events = await wait_for_events(folder, 2 * count)
        spans = [e for e in events if e["name"] == "flow.node_success"]
        assert {e["w3c_trace_id"] for e in spans} == {CLIENT_TRACE}
        assert {e["tenant"] for e in spans} == {"t1"}
        by_trace: dict[str, dict[str, dict[str, Any]]] = {}
        for event in spans:
            by_trace.setdefault(event["trace_id"], {})[event["node"]] = event
        assert len(by_trace) == count
        for nodes in by_trace.values():
            work, finish = nodes["work"], nodes["finish"]
            assert work["parent_span_id"] == CLIENT_SPAN  # the client's span
            assert finish["parent_span_id"] == work["span_id"]  # across the Redis stream
            assert work["duration_ms"] is not None
            assert (work["pid"], finish["pid"]) == (first.pid, second.pid)

    run_async(scenario)
