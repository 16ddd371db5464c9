"""A flow called over A2A (our server and client, real loopback HTTP) versus in-process.

    python benchmarks/a2a_roundtrip.py                 # 500 round trips, 20 x 50 chunks
    python benchmarks/a2a_roundtrip.py --quick         # 100 round trips, 5 x 20 chunks

The agent is served by `penguiflow a2a serve` in a child process (so the client's work does
not share the server's interpreter); the client is `A2AHttpTransport`, the transport a
`RemoteNode` uses. The same flow (one node) also runs in this process through `emit`/`fetch`,
the baseline of each ratio. Two workloads, one JSON line each:

- `a2a_roundtrip`: one message at a time, `send` (unary `message:send`) and wait for the
  completed task; round trips per second over A2A and in-process, and their ratio.
- `a2a_stream_latency`: the node emits chunks with `ctx.emit_chunk`, each carrying the
  CLOCK_MONOTONIC time it was emitted (system-wide on Linux, so comparable across the two
  processes); the client reads `message:stream` and notes when each chunk arrives. Median and
  p99 latency from emit to arrival over A2A and in-process (to `fetch`), and the ratio of the
  medians.

Needs penguiflow-a2a[server]. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from penguiflow import Headers, Message, Node, NodePolicy, PenguiFlow, StreamChunk, create

HERE = Path(__file__).resolve().parent


async def _work(message: Message, ctx: Any) -> Message:
    text = str(message.payload)
    if text.startswith("stream:"):
        for _ in range(int(text.split(":", 1)[1])):
            await ctx.emit_chunk(parent=message, text=f"{time.monotonic_ns()} ")
        return message.model_copy(update={"payload": "done"})
    return message


def build_flow() -> PenguiFlow:
    """The agent: one node, echoing, or emitting `stream:K` chunks."""
    return create(Node(_work, name="work", policy=NodePolicy(validate="none")).to())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- in-process baseline -----------------------------------------------------------------------


async def _inprocess(n: int, streams: int, chunks: int) -> tuple[float, list[float]]:
    flow = build_flow()
    flow.run()
    try:
        message = Message(payload="warm-up", headers=Headers(tenant="bench"))
        await flow.emit(message)
        await flow.fetch()
        started = time.perf_counter()
        for _ in range(n):
            await flow.emit(Message(payload="ping", headers=Headers(tenant="bench")))
            await flow.fetch()
        seconds = time.perf_counter() - started
        latencies: list[float] = []
        for _ in range(streams):
            await flow.emit(Message(payload=f"stream:{chunks}", headers=Headers(tenant="bench")))
            while True:
                item = await flow.fetch()
                payload = getattr(item, "payload", item)
                if not isinstance(payload, StreamChunk):
                    break
                arrived = time.monotonic_ns()
                latencies.append((arrived - int(payload.text.split()[0])) / 1000)
        return seconds, latencies
    finally:
        await flow.aclose()


# -- over A2A ----------------------------------------------------------------------------------


async def _start_server() -> tuple[asyncio.subprocess.Process, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from penguiflow.cli import main; main()",
        "a2a",
        "serve",
        "a2a_roundtrip:build_flow",
        "--port",
        "0",
        "--no-auth",
        "--log-level",
        "error",
        stdout=asyncio.subprocess.PIPE,
        cwd=str(HERE),
        env=env,
    )
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError("penguiflow a2a serve exited before serving (see its stderr)")
        if line.startswith("penguiflow a2a serve: serving "):
            return process, line.split()[-1]


async def _over_a2a(url: str, n: int, streams: int, chunks: int) -> tuple[float, list[float]]:
    from penguiflow_a2a.client import A2AHttpTransport

    from penguiflow.remote import RemoteCallRequest

    def request(payload: str) -> RemoteCallRequest:
        message = Message(payload=payload, headers=Headers(tenant="bench"))
        return RemoteCallRequest(message=message, skill="build_flow", agent_url=url)

    async with A2AHttpTransport(timeout_s=60) as transport:
        await transport.send(request("warm-up"))
        started = time.perf_counter()
        for _ in range(n):
            await transport.send(request("ping"))
        seconds = time.perf_counter() - started
        latencies: list[float] = []
        for _ in range(streams):
            async for event in transport.stream(request(f"stream:{chunks}")):
                arrived = time.monotonic_ns()
                # Each chunk's text is its emit time; an event may carry several if the
                # server coalesced them, and the final event carries the result.
                for stamp in (event.text or "").split():
                    if stamp.isdigit():
                        latencies.append((arrived - int(stamp)) / 1000)
        return seconds, latencies


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n, streams, chunks = (100, 5, 20) if args.quick else (500, 20, 50)
    local_s, local_lat = await _inprocess(n, streams, chunks)
    process, url = await _start_server()
    try:
        remote_s, remote_lat = await _over_a2a(url, n, streams, chunks)
    finally:
        process.terminate()
        await process.wait()
    common = {"python": platform.python_version(), "machine": platform.machine()}
    print(
        json.dumps(
            {
                "workload": "a2a_roundtrip",
                "n": n,
                "a2a_per_s": round(n / remote_s, 1),
                "inprocess_per_s": round(n / local_s, 1),
                "a2a_ms_per_trip": round(remote_s / n * 1000, 3),
                "inprocess_us_per_trip": round(local_s / n * 1e6, 1),
                "ratio_inprocess_to_a2a": round(remote_s / local_s, 1),
                **common,
            }
        )
    )
    print(
        json.dumps(
            {
                "workload": "a2a_stream_latency",
                "chunks": len(remote_lat),
                "a2a_median_us": round(statistics.median(remote_lat), 1),
                "a2a_p99_us": round(_percentile(remote_lat, 0.99), 1),
                "inprocess_median_us": round(statistics.median(local_lat), 1),
                "inprocess_p99_us": round(_percentile(local_lat, 0.99), 1),
                "ratio_median": round(
                    statistics.median(remote_lat) / statistics.median(local_lat), 1
                ),
                **common,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
