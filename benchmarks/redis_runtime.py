"""The `chain` workload on the redis runtime with 1 and 2 worker processes, against the local
runtime measured in the same run.

    python benchmarks/redis_runtime.py --redis redis://127.0.0.1:6390/0 --quick
    python benchmarks/redis_runtime.py --redis redis://127.0.0.1:6390/0 --full --json-out r.jsonl

Needs penguiflow-redis installed and a Redis server (`bash scripts/services/redis.sh start`).
Workers are real `penguiflow worker redis_chain:build` processes; the client emits with 64
messages in flight and fetches every result. Each run uses a fresh flow name and deletes its
keys afterwards. Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis_chain
import workloads

import penguiflow

HERE = Path(__file__).resolve().parent
SIZES = {"tiny": 100, "quick": 1_000, "full": 4_000}
IN_FLIGHT = 64
READY_TIMEOUT_S = 60.0


def start_workers(url: str, count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for index in range(count):
        log = (log_dir / f"worker-{index}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "penguiflow.cli",
                    "worker",
                    "redis_chain:build",
                    "--runtime",
                    url,
                ],
                cwd=HERE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    for index, proc in enumerate(procs):
        log_path = log_dir / f"worker-{index}.log"
        while b"penguiflow worker ready" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_workers(procs)
                raise RuntimeError(f"worker {index} did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def delete_keys(redis_url: str, namespace: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_cpu_s(redis_url: str) -> float:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    try:
        info = await client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        await client.aclose()


async def redis_chain_run(
    redis_url: str, items: list[Any], workers: int, log_dir: Path
) -> tuple[float, dict[str, float]]:
    """Seconds for `items`, and the CPU seconds each process spent meanwhile."""
    url = f"{redis_url}?flow_name=bench-{uuid.uuid4().hex[:10]}"
    procs = start_workers(url, workers, log_dir)
    flow = redis_chain.build(runtime=url)
    try:
        flow.run()
        await flow.emit(items[0])  # connect and warm both sides before timing
        await flow.fetch()
        before = [process_cpu_s(p.pid) for p in procs], time.process_time()
        server_before = await redis_cpu_s(redis_url)
        seconds = await workloads.drive(flow, items, IN_FLIGHT)
        server = await redis_cpu_s(redis_url) - server_before
        cpu = {
            "client": time.process_time() - before[1],
            "workers": sum(process_cpu_s(p.pid) for p in procs) - sum(before[0]),
            "redis_server": server,
        }
        return seconds, {name: round(value, 3) for name, value in cpu.items()}
    finally:
        await flow.stop()
        stop_workers(procs)
        await delete_keys(redis_url, flow.namespace)


async def run(redis_url: str, n: int, repeat: int, log_dir: Path) -> list[dict[str, Any]]:
    items = workloads.messages(n)
    hops = n * redis_chain.HOPS
    local = min(
        [
            await workloads.chain(items, hops=redis_chain.HOPS, in_flight=IN_FLIGHT)
            for _ in range(repeat)
        ]
    )
    records = []
    one_worker_s: float | None = None
    for workers in (1, 2):
        seconds, cpu = min(
            [await redis_chain_run(redis_url, items, workers, log_dir) for _ in range(repeat)],
            key=lambda run: run[0],
        )
        one_worker_s = one_worker_s or seconds
        record = {
            "workload": "redis_chain",
            "workers": workers,
            "n": n,
            "hops": redis_chain.HOPS,
            "in_flight": IN_FLIGHT,
            "seconds": round(seconds, 6),
            "msgs_per_s": round(n / seconds, 1),
            "per_hop_us": round(seconds / hops * 1e6, 3),
            "local_seconds": round(local, 6),
            "local_per_hop_us": round(local / hops * 1e6, 3),
            "ratio_to_local": round(seconds / local, 2),
            "speedup_vs_1_worker": round(one_worker_s / seconds, 2),
            "cpu_s": cpu,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "penguiflow": penguiflow.__version__,
        }
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--redis",
        default=os.environ.get("PENGUIFLOW_REDIS_URL", "redis://127.0.0.1:6390/0"),
        help="Redis URL (default: $PENGUIFLOW_REDIS_URL or redis://127.0.0.1:6390/0)",
    )
    size = parser.add_mutually_exclusive_group()
    for name in SIZES:
        size.add_argument(f"--{name}", action="store_const", dest="size", const=name)
    parser.add_argument("--repeat", type=int, default=None, help="best of N (default 3, tiny 1)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON lines to this file")
    parser.add_argument("--log-dir", type=Path, default=None, help="where worker logs go")
    args = parser.parse_args(argv)
    size_name = args.size or "quick"
    repeat = args.repeat or (1 if size_name == "tiny" else 3)
    log_dir = args.log_dir or Path(os.environ.get("TMPDIR", "/tmp")) / "penguiflow-bench-workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records = asyncio.run(run(args.redis, SIZES[size_name], repeat, log_dir))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    print(
        f"# redis runtime, {size_name} sizes, {time.perf_counter() - started:.1f}s", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
