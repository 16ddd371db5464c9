"""What an idle redis worker costs: CPU and Redis commands while there is no work.

    python benchmarks/redis_idle.py                 # one worker, the 10-node chain, 10 s
    python benchmarks/redis_idle.py --seconds 30 --workers 4 --json

Starts its own redis-server on a free port of 127.0.0.1 (nothing persisted) and `--workers`
`penguiflow worker redis_chain:build` processes serving the chain's ten nodes, waits until
they are past start-up (their first read, and the first round of taking over dead workers'
entries, which comes again every `claim_idle_s / 2` = 15 s), then measures over `--seconds`:
each worker's CPU (from /proc/<pid>/stat), the server's CPU, and the commands the server ran
(`INFO commandstats`). Nothing is emitted. Needs Linux, redis-server on PATH and
penguiflow-redis. `--block-s` sets how long each blocking read waits (the runtime's
`block_s`, 1 s by default): an idle worker makes about one read per `block_s`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_runtime import process_cpu_s, start_workers, stop_workers
from redis_scale import (
    BenchmarkError,
    calls_between,
    command_calls,
    start_servers,
    stop_servers,
)

#: after the workers say they are ready: their first read and first takeover round
SETTLE_S = 3.0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="penguiflow-idle-") as scratch:
        work_dir = Path(scratch)
        servers = start_servers(1, work_dir)
        try:
            (server, port) = servers[0]
            url = (
                f"redis://127.0.0.1:{port}/0?flow_name=idle-{uuid.uuid4().hex[:10]}"
                f"&block_s={args.block_s:g}"
            )
            try:
                workers = start_workers(url, args.workers, work_dir)
            except RuntimeError as exc:
                raise BenchmarkError(str(exc).strip().splitlines()[-1]) from None
            try:
                time.sleep(SETTLE_S)  # start-up's own commands are not what is measured
                before = [process_cpu_s(p.pid) for p in workers]
                server_before = process_cpu_s(server.pid)
                (calls_before,) = command_calls([port])
                time.sleep(args.seconds)  # the window measured
                after = [process_cpu_s(p.pid) for p in workers]
                server_after = process_cpu_s(server.pid)
                (calls_after,) = command_calls([port])
            finally:
                stop_workers(workers)
        finally:
            stop_servers(servers)
    calls = {
        name: n
        for name, n in calls_between(calls_before, calls_after).items()
        if not name.endswith(".usec") and n > 0
    }
    worker_cpu = [a - b for a, b in zip(after, before, strict=True)]
    return {
        "workload": "redis_idle",
        "workers": args.workers,
        "nodes": 10,
        "seconds": args.seconds,
        "block_s": args.block_s,
        "worker_cpu_ms": [round(c * 1000, 1) for c in worker_cpu],
        # CPU per wall second, as a share of one core
        "worker_cpu_percent": [round(c / args.seconds * 100, 3) for c in worker_cpu],
        "server_cpu_ms": round((server_after - server_before) * 1000, 1),
        "commands": sum(calls.values()),
        "commands_per_s": round(sum(calls.values()) / args.seconds, 2),
        "commands_by_name": dict(sorted(calls.items())),
        "clock_tick_ms": round(1000 / os.sysconf("SC_CLK_TCK"), 1),
    }


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=positive, default=10.0, help="the window (10)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument("--block-s", type=positive, default=1.0, help="each read's block (1)")
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    try:
        record = measure(args)
    except BenchmarkError as exc:
        print(f"redis_idle: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(record))
        return 0
    cpu = ", ".join(f"{ms:g} ms" for ms in record["worker_cpu_ms"])
    print(
        f"{record['workers']} idle worker(s) serving 10 nodes, {record['seconds']:g} s "
        f"(block_s={record['block_s']:g}): worker CPU {cpu} "
        f"({', '.join(f'{p:g}%' for p in record['worker_cpu_percent'])} of a core); "
        f"redis-server {record['server_cpu_ms']:g} ms; {record['commands']} commands "
        f"({record['commands_per_s']:g}/s: "
        + ", ".join(f"{n} {name}" for name, n in record["commands_by_name"].items())
        + f"); CPU is counted in {record['clock_tick_ms']:g} ms ticks"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
