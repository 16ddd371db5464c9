"""`distributed_app`'s flow, with an event sink that appends every event this process
publishes to `$PF_TEST_EVENTS/events-<pid>.jsonl` (for the trace-propagation tests: each
worker process writes its own file, the test reads them all)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from distributed_app import build as _build

from penguiflow.observability import Event, add_event_sink

__all__ = ["build"]


async def _write(event: Event) -> None:
    folder = os.environ.get("PF_TEST_EVENTS")
    if not folder:
        return
    span = event.span
    record = {
        "pid": os.getpid(),
        "name": event.qualified_name,
        "node": event.attributes.get("node_name"),
        "trace_id": event.trace_id,
        "w3c_trace_id": span.trace_id if span is not None else None,
        "span_id": span.span_id if span is not None else None,
        "parent_span_id": event.parent_span_id,
        "duration_ms": event.duration_ms,
        "tenant": event.tenant,
    }
    with Path(folder, f"events-{os.getpid()}.jsonl").open("a") as handle:
        handle.write(json.dumps(record) + "\n")


add_event_sink(_write)


def build(runtime: object = None) -> object:
    return _build(runtime)
