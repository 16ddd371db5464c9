"""PenguiFlow benchmark suite: each workload against its bare-asyncio shape, in one process.

    python benchmarks/run.py --quick            # every workload at small sizes (< 1 minute)
    python benchmarks/run.py --full             # the sizes named in the kernel issue
    python benchmarks/run.py --only chain --repeat 5 --json-out results.jsonl

Each workload prints one JSON line. Times are best-of-`--repeat`; ratios compare PenguiFlow to
the bare shape measured in the same run, so they mean the same on any machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bare
import workloads

import penguiflow
from penguiflow import FinalAnswer

SIZES = {
    "tiny": {"chain": 200, "roundtrip": 50, "fanout": 50, "controller": 10, "memory": 200},
    "quick": {
        "chain": 5_000,
        "roundtrip": 1_000,
        "fanout": 1_000,
        "controller": 100,
        "memory": 2_000,
    },
    "full": {
        "chain": 20_000,
        "roundtrip": 5_000,
        "fanout": 5_000,
        "controller": 500,
        "memory": 10_000,
    },
}
HOPS = 10
WIDTH = 8
LOOP_HOPS = 50
KIB = "x" * 1024

Timed = Callable[[], Awaitable[float]]


async def best_of(repeat: int, run: Timed) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        times.append(await run())
    return min(times)


def line(workload: str, n: int, seconds: float, baseline: float, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "workload": workload,
        "n": n,
        "seconds": round(seconds, 6),
        "per_msg_us": round(seconds / n * 1e6, 3),
        "baseline_seconds": round(baseline, 6),
        "ratio_to_bare": round(seconds / baseline, 3),
    }
    record.update(extra)
    record["python"] = platform.python_version()
    record["penguiflow"] = penguiflow.__version__
    return record


async def bench_chain(n: int, repeat: int, *, validate: bool = False) -> dict[str, Any]:
    items = workloads.messages(n)
    bare = await best_of(repeat, lambda: _bare.chain(items, hops=HOPS, in_flight=64))
    pf = await best_of(
        repeat, lambda: workloads.chain(items, hops=HOPS, in_flight=64, validate=validate)
    )
    hops = n * HOPS
    return line(
        "chain_validated" if validate else "chain",
        n,
        pf,
        bare,
        hops=HOPS,
        in_flight=64,
        per_hop_us=round(pf / hops * 1e6, 3),
        bare_per_hop_us=round(bare / hops * 1e6, 3),
        overhead_per_hop_us=round((pf - bare) / hops * 1e6, 3),
    )


async def bench_chain_sink(n: int, repeat: int) -> dict[str, Any]:
    """The chain with one no-op event sink installed (`add_event_sink`): every node invocation
    becomes a span and every message carries a traceparent. Reported as a ratio to the same
    chain with no sink, measured in the same run."""
    from penguiflow.observability import add_event_sink

    items = workloads.messages(n)
    bare = await best_of(repeat, lambda: _bare.chain(items, hops=HOPS, in_flight=64))
    plain = await best_of(repeat, lambda: workloads.chain(items, hops=HOPS, in_flight=64))

    async def noop(event: object) -> None:
        return None

    remove = add_event_sink(noop)
    try:
        sunk = await best_of(repeat, lambda: workloads.chain(items, hops=HOPS, in_flight=64))
    finally:
        remove()
    hops = n * HOPS
    return line(
        "chain_sink",
        n,
        sunk,
        bare,
        hops=HOPS,
        in_flight=64,
        per_hop_us=round(sunk / hops * 1e6, 3),
        no_sink_per_hop_us=round(plain / hops * 1e6, 3),
        ratio_to_no_sink=round(sunk / plain, 2),
    )


async def bench_roundtrip(n: int, repeat: int) -> dict[str, Any]:
    items = workloads.messages(n)
    bare = await best_of(repeat, lambda: _bare.chain(items, hops=HOPS, in_flight=1))
    pf = await best_of(repeat, lambda: workloads.chain(items, hops=HOPS, in_flight=1))
    return line(
        "roundtrip", n, pf, bare, hops=HOPS, in_flight=1, per_hop_us=round(pf / (n * HOPS) * 1e6, 3)
    )


async def bench_fanout(n: int, repeat: int) -> dict[str, Any]:
    items = workloads.messages(n)
    bare = await best_of(repeat, lambda: _bare.fanout_join(items, width=WIDTH, in_flight=64))
    pf = await best_of(repeat, lambda: workloads.fanout_join(items, width=WIDTH, in_flight=64))
    return line("fanout_join", n, pf, bare, width=WIDTH, in_flight=64)


async def bench_controller(n: int, repeat: int) -> dict[str, Any]:
    items = workloads.controller_items(n, LOOP_HOPS)
    step = workloads.controller_step(LOOP_HOPS)

    def done(message: Any) -> bool:
        return isinstance(message.payload, FinalAnswer)

    bare = await best_of(
        repeat, lambda: _bare.controller(items, step=step, done=done, in_flight=16)
    )
    pf = await best_of(repeat, lambda: workloads.controller(items, hops=LOOP_HOPS, in_flight=16))
    return line(
        "controller",
        n,
        pf,
        bare,
        hops=LOOP_HOPS,
        in_flight=16,
        per_hop_us=round(pf / (n * LOOP_HOPS) * 1e6, 3),
    )


async def _peak(run: Timed) -> tuple[float, int]:
    gc.collect()
    tracemalloc.start()
    try:
        seconds = await run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seconds, peak


async def bench_memory(n: int, repeat: int, *, bounded: bool) -> dict[str, Any]:
    # The payloads exist before measuring: peaks count what the pipeline itself holds.
    items = workloads.messages(n, KIB)
    if bounded:
        bare_s, bare_peak = await _peak(lambda: _bare.chain(items, hops=HOPS, in_flight=64))
        pf_s, pf_peak = await _peak(lambda: workloads.chain(items, hops=HOPS, in_flight=64))
    else:
        bare_s, bare_peak = await _peak(lambda: _bare.chain_unbounded(items, hops=HOPS))
        pf_s, pf_peak = await _peak(lambda: workloads.chain_unbounded(items, hops=HOPS))
    return line(
        "memory_bounded" if bounded else "memory_unbounded",
        n,
        pf_s,
        bare_s,
        payload_bytes=1024,
        # tracemalloc slows allocation-heavy code unevenly: read peaks here, not seconds.
        timed_under_tracemalloc=True,
        peak_kib=round(pf_peak / 1024, 1),
        bare_peak_kib=round(bare_peak / 1024, 1),
        peak_ratio_to_bare=round(pf_peak / max(bare_peak, 1), 3),
    )


async def run_all(
    sizes: dict[str, int], repeat: int, only: set[str] | None
) -> list[dict[str, Any]]:
    plan: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("chain", lambda: bench_chain(sizes["chain"], repeat)),
        ("chain_validated", lambda: bench_chain(sizes["chain"], repeat, validate=True)),
        ("chain_sink", lambda: bench_chain_sink(sizes["chain"], repeat)),
        ("roundtrip", lambda: bench_roundtrip(sizes["roundtrip"], repeat)),
        ("fanout_join", lambda: bench_fanout(sizes["fanout"], repeat)),
        ("controller", lambda: bench_controller(sizes["controller"], repeat)),
        ("memory_unbounded", lambda: bench_memory(sizes["memory"], 1, bounded=False)),
        ("memory_bounded", lambda: bench_memory(sizes["memory"], 1, bounded=True)),
    ]
    results = []
    for name, bench in plan:
        if only and not any(name.startswith(o) for o in only):
            continue
        record = await bench()
        print(json.dumps(record), flush=True)
        results.append(record)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_const", dest="size", const="tiny")
    size.add_argument("--quick", action="store_const", dest="size", const="quick")
    size.add_argument("--full", action="store_const", dest="size", const="full")
    parser.add_argument("--only", action="append", help="workload name prefix (repeatable)")
    parser.add_argument("--repeat", type=int, default=None, help="best of N (default 3, tiny 1)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON lines to this file")
    args = parser.parse_args(argv)
    size_name = args.size or "quick"
    repeat = args.repeat or (1 if size_name == "tiny" else 3)
    started = time.perf_counter()
    results = asyncio.run(run_all(SIZES[size_name], repeat, set(args.only or ()) or None))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text("".join(json.dumps(r) + "\n" for r in results), encoding="utf-8")
    print(
        f"# {len(results)} workloads, {size_name} sizes, {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
