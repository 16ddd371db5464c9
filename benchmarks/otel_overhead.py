"""What penguiflow-otel costs the code it observes.

    python benchmarks/otel_overhead.py            # chain 20,000 messages, 300 planner runs
    python benchmarks/otel_overhead.py --quick    # smaller, for a smoke run

Two workloads, each run three ways in one process, interleaved, best of `--repeat`:

- `none`: no event sink (what every run costs without observability);
- `noop`: one event sink that does nothing (the kernel's own cost of spans and events);
- `otel`: penguiflow-otel's `OTelSink` exporting to the SDK's in-memory span exporter
  behind the `BatchSpanProcessor` users get, and to an in-memory metric reader.

Workloads: `chain` (10 pass-through nodes, 64 messages in flight: every node attempt is a
span) and `planner` (a `ReactPlanner` run inside a node, with an instant scripted model
and one tool call: node, run, step and tool spans, plus planner events). Each line prints
the seconds and the ratios `otel/none` and `noop/none`, and the spans exported per run.
Needs penguiflow-otel and penguiflow-planner. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# The installed hook plugins (penguiflow-otel's own default sink among them) stay out: each
# variant installs exactly the sink it measures.
os.environ["PENGUIFLOW_PLUGINS_AUTOLOAD"] = "0"

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from penguiflow_otel import OTelSink

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.observability import Event, add_event_sink

HOPS = 10
IN_FLIGHT = 64


async def _noop(event: Event) -> None:
    return None


async def passthrough(message: Message, ctx: Any) -> Message:
    return message


async def chain(n: int) -> float:
    nodes = [
        Node(passthrough, name=f"n{i}", policy=NodePolicy(validate="none")) for i in range(HOPS)
    ]
    flow = create(*(a.to(b) for a, b in itertools.pairwise(nodes)), nodes[-1].to())
    flow.run()
    started = time.perf_counter()
    sent = received = 0
    while sent < min(IN_FLIGHT, n):
        await flow.emit(Message(payload=sent, headers=Headers(tenant="bench")))
        sent += 1
    while received < n:
        await flow.fetch()
        received += 1
        if sent < n:
            await flow.emit(Message(payload=sent, headers=Headers(tenant="bench")))
            sent += 1
    elapsed = time.perf_counter() - started
    await flow.stop()
    return elapsed


def _planner_flow() -> Any:
    import penguiflow_planner

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins/penguiflow-otel/tests"))
    from tools import planner_with_search

    async def agent(message: Message, ctx: Any) -> Message:
        # a fresh planner per run: its scripted model replays the same two replies
        result = await planner_with_search(penguiflow_planner).run(str(message.payload))
        return message.model_copy(update={"payload": result.payload})

    return create(Node(agent, name="agent", policy=NodePolicy(validate="none")).to())


async def planner(runs: int) -> float:
    flow = _planner_flow()
    flow.run()
    started = time.perf_counter()
    for i in range(runs):
        await flow.emit(Message(payload=f"q{i}", headers=Headers(tenant="bench")))
        await flow.fetch()
    elapsed = time.perf_counter() - started
    await flow.stop()
    return elapsed


def _otel_sink() -> tuple[OTelSink, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536))
    sink = OTelSink(
        tracer_provider=provider, meter_provider=MeterProvider([InMemoryMetricReader()])
    )
    return sink, exporter


async def measure(
    name: str, body: Callable[[int], Awaitable[float]], n: int, repeat: int
) -> dict[str, Any]:
    best: dict[str, float] = {}
    spans_per_run = 0.0
    for _ in range(repeat):
        for variant in ("none", "noop", "otel"):
            remove: Callable[[], None] | None = None
            sink: OTelSink | None = None
            exporter: InMemorySpanExporter | None = None
            if variant == "noop":
                remove = add_event_sink(_noop)
            elif variant == "otel":
                sink, exporter = _otel_sink()
                remove = add_event_sink(sink)
            gc.collect()
            try:
                seconds = await body(n)
            finally:
                if remove is not None:
                    remove()
            if sink is not None and exporter is not None:
                sink.shutdown()  # exports what the batch processor still holds
                assert sink.tracer_provider is not None
                sink.tracer_provider.shutdown()
                spans_per_run = len(exporter.get_finished_spans()) / n
            best[variant] = min(best.get(variant, float("inf")), seconds)
    return {
        "workload": f"otel_{name}",
        "n": n,
        "seconds": {k: round(v, 4) for k, v in best.items()},
        "ratio_otel_to_none": round(best["otel"] / best["none"], 2),
        "ratio_noop_to_none": round(best["noop"] / best["none"], 2),
        "spans_per_item": round(spans_per_run, 2),
        "python": sys.version.split()[0],
    }


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args(argv)
    messages, runs = (2_000, 30) if options.quick else (20_000, 300)
    print(json.dumps(await measure("chain", chain, messages, options.repeat)), flush=True)
    print(json.dumps(await measure("planner", planner, runs, options.repeat)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
