"""Test helpers: a deadline poller, uvicorn serving an app on a free loopback port in the
test's own event loop, an SSE reader on httpx, and the events of a run that waited minutes
for an approval."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from penguiflow.observability import Event
from penguiflow.tracecontext import SpanContext


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0) -> Any:
    """Await `check()` until it returns something truthy, and return that; fail after
    `timeout` seconds (a deadline on polling state, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn in this event loop on 127.0.0.1; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 15
        while not server.started and not task.done():
            if time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def sse_events(
    source: httpx.Response | AsyncIterator[str],
) -> AsyncIterator[dict[str, Any]]:
    """The `data:` payloads of an SSE response (or of its lines, partly read already),
    parsed, with the event name under `_event`."""
    lines = source.aiter_lines() if isinstance(source, httpx.Response) else source
    event: str | None = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = json.loads(line.split(":", 1)[1])
            if event is not None and isinstance(data, dict):
                data["_event"] = event
            yield data
        elif not line:
            event = None


def paused_trace_events(trace_id: str, start: float, pause_s: float) -> list[Event]:
    """The events of a planner turn (32-hex `trace_id`) that starts at `start` (epoch
    seconds), researches, pauses for approval for `pause_s` seconds, and resumes to finish:
    what a real run records, at times chosen by the test."""
    ids = iter(f"{n:016x}" for n in range(1, 100))
    task = next(ids)

    def span(
        family: str, name: str, at: float, ms: float, parent: str, **attributes: Any
    ) -> tuple[Event, str]:
        span_id = next(ids)
        context = SpanContext(trace_id, span_id)
        event = Event(
            family,
            name,
            ts=start + at,
            duration_ms=ms,
            trace_id=trace_id,
            span=context,
            parent_span_id=parent,
            attributes=attributes,
        )
        return event, span_id

    def point(family: str, name: str, at: float, parent: str | None) -> Event:
        return Event(family, name, ts=start + at, trace_id=trace_id, parent_span_id=parent)

    resumed = 0.05 + pause_s
    first_run, run1 = span("planner", "run", 0.003, 46.0, task)
    first_step, step1 = span("planner", "step", 0.005, 20.0, run1, step=0)
    research, _ = span("tool", "call", 0.010, 1.0, step1, tool="research")
    second_step, step2 = span("planner", "step", 0.026, 22.0, run1, step=1)
    publish, _ = span("tool", "call", 0.030, 1.5, step2, tool="publish")
    second_run, run2 = span("planner", "run", resumed + 0.001, 8.0, task)
    last_step, step3 = span("planner", "step", resumed + 0.002, 6.0, run2, step=2)
    answer, _ = span("llm", "call", resumed + 0.003, 4.0, step3)
    whole = Event(
        "session",
        "task",
        ts=start,
        duration_ms=(resumed + 0.010) * 1000.0,
        trace_id=trace_id,
        span=SpanContext(trace_id, task),
        attributes={"task": "turn"},
    )
    return [
        first_run,
        first_step,
        research,
        second_step,
        publish,
        point("planner", "pause", 0.048, step2),
        point("audit", "planner.pause", 0.049, step2),
        point("audit", "planner.resume", resumed, task),
        second_run,
        last_step,
        answer,
        point("planner", "finish", resumed + 0.009, step3),
        whole,
    ]
