"""How the redis runtime scales with worker processes, clients and Redis servers.

The `chain` workload (10 pass-through nodes) through 1, 2, 4... `penguiflow worker
redis_chain:build` processes:

    python benchmarks/redis_scale.py                      # 1, 2, 4 workers: under a minute
    python benchmarks/redis_scale.py --workers 1,2,4,8,16 --clients 4 --in-flight 64 \\
        --messages 20000 --chain on --json

Starts its own redis-server process(es) on free ports of 127.0.0.1 (`--shards S` starts S
independent servers and gives the runtime the URL `redis://127.0.0.1:p1,127.0.0.1:p2/0`;
with `--cluster` they become the masters of one Redis Cluster, `redis+cluster://...`),
then for each worker count: the workers, and `--clients` client processes each keeping
`--in-flight` messages in flight (that many tasks, each emitting one message and fetching one
result at a time, so emits that queue up are batched as a busy web app's would be).
`--messages` is the total per worker count, shared evenly by the clients.

Prints, per worker count: msgs/s, scaling efficiency (throughput / (workers x the throughput
of the smallest worker count, per worker): 1.0 is linear), how many cores the run kept busy
(the CPU of all its processes over the wall time), and the CPU spent per hop (one message
through one node) by the workers, the clients and each redis-server, read from
/proc/<pid>/stat. Needs Linux, redis-server on PATH and penguiflow-redis. It shows scaling only
where the machine has a core for every worker, client and server; below that, read the CPU
per hop, which carries to a bigger machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis_chain
import workloads
from redis_runtime import process_cpu_s, start_workers, stop_workers

import penguiflow
from penguiflow.errors import describe_exception

HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 600.0
WARM_UP = 8


class BenchmarkError(Exception):
    """The benchmark cannot run as asked (printed without a traceback)."""


# -- redis-server processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_servers(
    count: int, work_dir: Path, *, cluster: bool = False
) -> list[tuple[subprocess.Popen[bytes], int]]:
    """`count` redis-server processes of our own (nothing persisted), once each answers;
    with `cluster`, the masters of one Redis Cluster holding equal ranges of the slots."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchmarkError(
            "redis-server is not on PATH; install it (Debian: apt-get install redis-server)"
        )
    servers = []
    try:
        for index in range(count):
            port = free_port()
            cluster_args: tuple[str, ...] = ()
            if cluster:
                cluster_args = (
                    *("--cluster-enabled", "yes", "--cluster-port", str(free_port())),
                    *("--cluster-config-file", f"nodes-{index}.conf"),
                )
            log = (work_dir / f"redis-{index}.log").open("wb")
            proc = subprocess.Popen(
                [
                    *(binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""),
                    *("--appendonly", "no", "--dir", str(work_dir), *cluster_args),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            servers.append((proc, port))
        for index, (proc, port) in enumerate(servers):
            wait_until_answering(proc, port, work_dir / f"redis-{index}.log")
        if cluster:
            create_cluster([port for _, port in servers], work_dir)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def create_cluster(ports: Sequence[int], work_dir: Path) -> None:
    """`redis-cli --cluster create` over the servers (no replicas), then wait until every
    master says `cluster_state:ok`."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise BenchmarkError("redis-cli is not on PATH (Debian: apt-get install redis-tools)")
    created = subprocess.run(
        [
            *(cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports)),
            *("--cluster-replicas", "0", "--cluster-yes"),
        ],
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT_S,
        check=False,
    )
    if created.returncode != 0:
        raise BenchmarkError(
            f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}"
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = list(ports)
    while waiting:
        info = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(waiting[0]), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        if "cluster_state:ok" in info:
            waiting.pop(0)
        elif time.monotonic() > deadline:
            raise BenchmarkError(f"the cluster on port {waiting[0]} is not ok:\n{info}")
        else:
            time.sleep(0.05)


def wait_until_answering(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as c:
            c.sendall(b"PING\r\n")
            if c.recv(16).startswith(b"+PONG"):
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchmarkError(f"redis-server on port {port} did not start:\n{log.read_text()}")
        time.sleep(0.05)


def stop_servers(servers: Sequence[tuple[subprocess.Popen[bytes], int]]) -> None:
    for proc, _ in servers:
        if proc.poll() is None:
            proc.terminate()
    for proc, _ in servers:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def commit_boundaries(commit_every: int) -> list[str]:
    """The chain's nodes after which a chained worker commits to Redis, one every
    `commit_every` nodes (the last node's output is the result, written anyway): a message
    then crosses Redis HOPS / commit_every times, rounded up."""
    return [f"n{i}" for i in range(commit_every - 1, redis_chain.HOPS - 1, commit_every)]


def runtime_url(
    ports: Sequence[int], chain: str | None, *, cluster: bool = False, commit_every: int = 0
) -> str:
    """Several servers: `redis://h:p1,h:p2/0` (one shard each); a cluster: `redis+cluster://`
    (as many shards as it has masters)."""
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    query = {"flow_name": f"scale-{uuid.uuid4().hex[:10]}"}
    if chain is not None:
        query["chain"] = "true" if chain == "on" else "false"
    if commit_every:
        query["commit_after"] = ",".join(commit_boundaries(commit_every))
    address = f"redis+cluster://{hosts}" if cluster else f"redis://{hosts}/0"
    return f"{address}?" + "&".join(f"{k}={v}" for k, v in query.items())


def check_servers_reachable(ports: Sequence[int], *, cluster: bool = False) -> None:
    """The runtime's own health check through the benchmark's URL, before any process starts."""
    from penguiflow_redis import RedisRuntime

    url = runtime_url(ports, None, cluster=cluster)

    async def check_all() -> None:
        for check in RedisRuntime(url).health_checks().values():
            await check()

    try:
        asyncio.run(check_all())
    except Exception as exc:
        raise BenchmarkError(
            f"the runtime cannot reach its redis-server(s): {describe_exception(exc)}"
        ) from None


# -- client processes -------------------------------------------------------------------------


async def drive_concurrently(flow: Any, items: Sequence[Any], in_flight: int) -> float:
    """`in_flight` tasks, each emitting the next item and fetching a result until none is
    left; the seconds taken. Results are not matched to emits: every emit gets one fetch."""
    iterator: Iterator[Any] = iter(items)

    async def user() -> None:
        for item in iterator:
            await flow.emit(item)
            await flow.fetch()

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(in_flight)))
    return time.perf_counter() - started


async def client_main(url: str, messages: int, in_flight: int) -> None:
    """One client process: warm up, say `ready`, run on `go` (stdin), print its numbers as
    JSON, then wait for stdin to close before stopping (so the parent reads its CPU first)."""
    flow = redis_chain.build(runtime=url)
    flow.run()
    loop = asyncio.get_running_loop()
    try:
        await drive_concurrently(flow, workloads.messages(WARM_UP), min(in_flight, WARM_UP))
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        cpu = time.process_time()
        seconds = await drive_concurrently(flow, workloads.messages(messages), in_flight)
        cpu = time.process_time() - cpu
        print(json.dumps({"seconds": seconds, "cpu_s": cpu, "messages": messages}), flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        await flow.stop()


def start_clients(
    url: str, count: int, messages: int, in_flight: int, log_dir: Path
) -> list[subprocess.Popen[str]]:
    shares = [messages // count + (1 if i < messages % count else 0) for i in range(count)]
    procs = []
    for index, share in enumerate(shares):
        with (log_dir / f"client-{index}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, __file__, "--role", "client", "--url", url),
                        *("--messages", str(share), "--in-flight", str(in_flight)),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
            )
    for index, proc in enumerate(procs):
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            stop_clients(procs)
            raise BenchmarkError(
                f"client {index} did not start (exit code {proc.poll()}): "
                f"{last_line(log_dir / f'client-{index}.log')}"
            )
    return procs


def last_line(log: Path) -> str:
    """The last line of a log (an exception's message ends a traceback), or a note."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else f"nothing in {log}"


def stop_clients(procs: Sequence[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- one worker count -------------------------------------------------------------------------


def flush_servers(ports: Sequence[int]) -> None:
    for port in ports:
        with socket.create_connection(("127.0.0.1", port), 5) as conn:
            conn.sendall(b"FLUSHALL\r\n")
            conn.recv(16)


def command_calls(ports: Sequence[int]) -> list[dict[str, int]]:
    """Commands each server ran so far, by name (`INFO commandstats`): counts, unlike CPU,
    do not depend on how busy the machine is. `<name>.usec` holds the microseconds the server
    spent running them (without reading and writing the sockets)."""
    import redis

    counts: list[dict[str, int]] = []
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        server: dict[str, int] = {}
        for key, row in stats.items():
            name = key.removeprefix("cmdstat_")
            server[name] = int(row["calls"])
            server[f"{name}.usec"] = int(row["usec"])
        counts.append(server)
    return counts


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    calls = {name: n - before.get(name, 0) for name, n in after.items()}
    calls["info"] = calls.get("info", 0) - 1  # our own INFO before the run
    return calls


def script_calls(calls: dict[str, int]) -> int:
    return calls.get("evalsha", 0) + calls.get("eval", 0)


def measure(
    ports: Sequence[int],
    server_pids: Sequence[int],
    workers: int,
    args: argparse.Namespace,
    log_dir: Path,
) -> dict[str, Any]:
    url = runtime_url(ports, args.chain, cluster=args.cluster, commit_every=args.commit_every)
    try:
        worker_procs = start_workers(url, workers, log_dir)
    except RuntimeError as exc:  # its message ends with the worker's log
        raise BenchmarkError(str(exc).strip().splitlines()[-1]) from None
    clients: list[subprocess.Popen[str]] = []
    try:
        clients = start_clients(url, args.clients, args.messages, args.in_flight, log_dir)
        pids = {
            "workers": [p.pid for p in worker_procs],
            "clients": [p.pid for p in clients],
            "servers": list(server_pids),
        }
        before = {role: [process_cpu_s(pid) for pid in group] for role, group in pids.items()}
        calls_before = command_calls(ports)
        started = time.perf_counter()
        for proc in clients:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in clients:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise BenchmarkError(f"a client failed (exit code {proc.wait()})")
            reports.append(json.loads(line))
        seconds = time.perf_counter() - started
        after = {role: [process_cpu_s(pid) for pid in group] for role, group in pids.items()}
        calls_after = command_calls(ports)
    finally:
        stop_clients(clients)
        stop_workers(worker_procs)
        flush_servers(ports)
    cpu = {role: [b - a for a, b in zip(before[role], after[role], strict=True)] for role in before}
    hops = args.messages * redis_chain.HOPS
    by_server = [calls_between(b, a) for b, a in zip(calls_before, calls_after, strict=True)]
    calls: dict[str, int] = {}
    usec: dict[str, int] = {}
    for server_calls in by_server:
        for name, n in server_calls.items():
            if name.endswith(".usec"):
                usec[name.removesuffix(".usec")] = usec.get(name.removesuffix(".usec"), 0) + n
            else:
                calls[name] = calls.get(name, 0) + n
    # Every emit and every commit is one script call (EVALSHA); what is not an emit is a
    # worker's commit of a processed entry: 10 per message unchained, 1 chained.
    scripts = script_calls(calls)
    return {
        "workload": "redis_scale",
        "workers": workers,
        "clients": args.clients,
        "in_flight": args.in_flight,
        "shards": args.shards,
        "cluster": args.cluster,
        "chain": args.chain or "default",
        "commit_every": args.commit_every,
        "messages": args.messages,
        "hops": redis_chain.HOPS,
        "node_us": args.node_us,
        "seconds": round(seconds, 4),
        "msgs_per_s": round(args.messages / seconds, 1),
        "cpu_s": {
            "workers": round(sum(cpu["workers"]), 3),
            "clients": round(sum(cpu["clients"]), 3),
            "servers": [round(s, 3) for s in cpu["servers"]],
        },
        "cpu_us_per_hop": {
            "workers": round(sum(cpu["workers"]) / hops * 1e6, 1),
            "clients": round(sum(cpu["clients"]) / hops * 1e6, 1),
            "servers": [round(s / hops * 1e6, 1) for s in cpu["servers"]],
        },
        "client_cpu_us_per_msg": round(sum(cpu["clients"]) / args.messages * 1e6, 1),
        "redis_commands_per_msg": round(sum(calls.values()) / args.messages, 2),
        "redis_commands_per_msg_by_name": {
            name: round(n / args.messages, 2) for name, n in sorted(calls.items()) if n > 0
        },
        "commits_per_msg": round((scripts - args.messages) / args.messages, 2),
        # emits and commits each server ran: how evenly the traces spread over the shards
        "scripts_by_server": [script_calls(server_calls) for server_calls in by_server],
        # µs the servers spent running each command, per message (EVALSHA's time includes
        # the commands its script calls, also listed under their own names); the rest of a
        # server's CPU goes to reading and writing sockets
        "redis_command_us_per_msg_by_name": {
            name: round(n / args.messages, 2) for name, n in sorted(usec.items()) if n > 0
        },
        # CPU of every process of the run over its wall time: near the machine's core count,
        # more workers cannot add throughput
        "cores_busy": round(sum(sum(group) for group in cpu.values()) / seconds, 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "penguiflow": penguiflow.__version__,
    }


def table(records: Sequence[dict[str, Any]]) -> str:
    shards = records[0]["shards"] if records else 1
    servers = " | ".join(f"redis {i}" for i in range(shards))
    lines = [
        "| workers | msgs/s | efficiency | cores busy | Redis cmds/msg | commits/msg "
        f"| CPU µs/hop: workers | clients | {servers} |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * shards,
    ]
    for r in records:
        per_hop = r["cpu_us_per_hop"]
        cells = [
            str(r["workers"]),
            f"{r['msgs_per_s']:,.0f}",
            f"{r['efficiency']:.2f}",
            f"{r['cores_busy']:.2f}",
            f"{r['redis_commands_per_msg']:.1f}",
            f"{r['commits_per_msg']:.2f}",
            f"{per_hop['workers']:.0f}",
            f"{per_hop['clients']:.0f}",
            *(f"{s:.0f}" for s in per_hop["servers"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.node_us < 0:
        raise BenchmarkError(f"--node-us must be 0 or more, got {args.node_us:g}")
    # The worker processes inherit it and build their nodes with that much work.
    os.environ[redis_chain.NODE_US_ENV] = f"{args.node_us:g}"
    with tempfile.TemporaryDirectory(prefix="penguiflow-scale-") as scratch:
        work_dir = Path(scratch)
        log_dir = args.log_dir or work_dir
        servers = start_servers(args.shards, work_dir, cluster=args.cluster)
        try:
            ports = [port for _, port in servers]
            check_servers_reachable(ports, cluster=args.cluster)
            records: list[dict[str, Any]] = []
            for workers in args.workers:
                record = measure(ports, [p.pid for p, _ in servers], workers, args, log_dir)
                base = records[0] if records else record
                per_worker = base["msgs_per_s"] / base["workers"]
                record["efficiency"] = round(record["msgs_per_s"] / (workers * per_worker), 3)
                if args.json:
                    print(json.dumps(record), flush=True)
                records.append(record)
        finally:
            stop_servers(servers)
    return records


def worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--workers takes counts separated by commas, like 1,2,4; got {text!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--workers counts must be at least 1; got {text!r}")
    return counts


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--workers", type=worker_counts, default=[1, 2, 4], help="e.g. 1,2,4,8,16 (1,2,4)"
    )
    parser.add_argument("--clients", type=positive, default=1, help="client processes (1)")
    parser.add_argument(
        "--in-flight", type=positive, default=32, help="messages in flight per client (32)"
    )
    parser.add_argument("--shards", type=positive, default=1, help="independent redis-servers (1)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="make the --shards servers one Redis Cluster (redis+cluster://; 3 or more)",
    )
    parser.add_argument(
        "--messages", type=positive, default=2000, help="per worker count, all clients (2000)"
    )
    parser.add_argument(
        "--chain", choices=("on", "off"), default=None, help="operator chaining (runtime default)"
    )
    parser.add_argument(
        "--commit-every",
        type=positive,
        default=0,
        metavar="K",
        help="with chaining, also commit after every K-th node (a durability boundary): "
        f"{redis_chain.HOPS}/K crossings of Redis per message instead of 1",
    )
    parser.add_argument(
        "--node-us",
        type=float,
        default=0.0,
        help="CPU each node spends per message, in microseconds (0): with work in the nodes, "
        "workers bound throughput, so adding them shows even on a few cores",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout, table on stderr")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep worker logs here")
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "client":
        asyncio.run(client_main(args.url, args.messages, args.in_flight))
        return 0
    if args.commit_every and args.chain == "off":
        parser.error(
            "--commit-every sets where a chain commits; it needs chaining (not --chain off)"
        )
    if args.commit_every > redis_chain.HOPS:
        parser.error(f"--commit-every must be 1 to {redis_chain.HOPS}; got {args.commit_every}")
    if args.cluster and args.shards < 3:
        parser.error(
            f"--cluster needs --shards 3 or more (a Redis Cluster's minimum); got {args.shards}"
        )
    if args.messages < args.clients:
        parser.error(f"--messages ({args.messages}) must be at least --clients ({args.clients})")
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        records = run(args)
    except BenchmarkError as exc:
        print(f"redis_scale: {exc}", file=sys.stderr)
        return 2
    out = sys.stderr if args.json else sys.stdout
    print(table(records), file=out)
    servers = f"{args.shards} server(s)" + (" in a cluster" if args.cluster else "")
    print(
        f"# {args.messages} messages x {redis_chain.HOPS} hops per row, {args.clients} client(s) x "
        f"{args.in_flight} in flight, {servers}, chain={args.chain or 'default'}, "
        f"{args.node_us:g} µs of work per node, "
        f"{os.cpu_count()} CPUs, {time.perf_counter() - started:.0f}s",
        file=out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
