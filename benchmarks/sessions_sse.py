"""One session's updates fanned out to many SSE subscribers over real loopback HTTP.

    python benchmarks/sessions_sse.py                  # 100 subscribers, 2,000 updates
    python benchmarks/sessions_sse.py --quick          # 20 subscribers, 300 updates

The server (penguiflow_sessions.server.create_app under uvicorn) runs in a child process, so
the subscribers' parsing does not share its interpreter. The subscribers are raw asyncio
connections reading `text/event-stream` (chunked HTTP/1.1), lighter than an HTTP client
library, so the numbers are the server's. Two phases:

- `burst`: a task emits N PROGRESS updates back to back with `TaskRuntime.emit_update`;
  reported: updates per second delivered to every subscriber (N / time from the first emit
  to the last subscriber's last update) and deliveries per second (that times the number of
  subscribers). The session's update queue is sized so that nothing is dropped; the number of
  updates any subscriber missed is reported (`missed`, expected 0).
- `paced`: one update every 5 ms, so queues stay empty; the latency from `emit_update` to a
  subscriber parsing it (both read CLOCK_MONOTONIC, which is system-wide on Linux), median
  and p99 over every (update, subscriber) pair.

Prints one JSON line per phase. Needs penguiflow-sessions[server]. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

# -- the server (child process) ----------------------------------------------------------------


async def _serve() -> None:
    import uvicorn
    from penguiflow_sessions.manager import SessionManager
    from penguiflow_sessions.models import SessionLimits, TaskType, UpdateType
    from penguiflow_sessions.server import AnonymousAuthenticator, create_app

    manager = SessionManager(limits=SessionLimits(update_queue_size=20_000))
    authenticator = AnonymousAuthenticator()
    app = create_app(manager=manager, authenticator=authenticator)
    host = app.state.session_host
    sock = socket.socket()
    # uvicorn sets TCP_NODELAY only on sockets it binds itself; without it each small write
    # waits about 40 ms for the client's delayed ACK, which would swamp what we measure.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="error", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    print(sock.getsockname()[1], flush=True)
    session = await host.open(authenticator.principal, "bench")
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        phase, count, interval_ms = line.split()
        total, pause = int(count), float(interval_ms) / 1000

        async def emitter(
            runtime: Any, total: int = total, pause: float = pause, phase: str = phase
        ) -> str:
            for seq in range(total):
                runtime.emit_update(
                    UpdateType.PROGRESS, {"seq": seq, "t": time.monotonic_ns(), "phase": phase}
                )
                if pause:
                    await asyncio.sleep(pause)
                elif seq % 50 == 0:
                    # A burst still yields now and then, as a real task does between steps.
                    await asyncio.sleep(0)
            return "done"

        await session.spawn_task(emitter, task_type=TaskType.BACKGROUND, query=phase)
    server.should_exit = True
    await serving


# -- the subscribers (this process) -------------------------------------------------------------


async def _subscriber(
    port: int, expect: int, ready: asyncio.Event, counter: list[int], out: list[tuple[int, int]]
) -> int:
    """Read PROGRESS updates until `expect` arrived; record (seq, latency_ns). Returns the
    time (monotonic ns) the last one arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /sessions/bench/events?update_type=PROGRESS HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    await writer.drain()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # response headers
    got = 0
    last = 0
    subscribed = False
    buffer = b""
    while got < expect:
        size_line = await reader.readline()
        size = int(size_line.strip() or b"0", 16)
        chunk = await reader.readexactly(size + 2)
        buffer += chunk[:-2]
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if not subscribed and b": subscribed" in event:
                subscribed = True
                counter[0] += 1
                if counter[0] == counter[1]:
                    ready.set()
            for line in event.split(b"\n"):
                if line.startswith(b"data: "):
                    now = time.monotonic_ns()
                    content = json.loads(line[6:])["content"]
                    out.append((content["seq"], now - content["t"]))
                    got += 1
                    last = now
    writer.close()
    return last


async def _phase(
    port: int, child: subprocess.Popen[str], name: str, subscribers: int, count: int, pace: float
) -> dict[str, Any]:
    ready = asyncio.Event()
    counter = [0, subscribers]
    outs: list[list[tuple[int, int]]] = [[] for _ in range(subscribers)]
    tasks = [
        asyncio.create_task(_subscriber(port, count, ready, counter, outs[i]))
        for i in range(subscribers)
    ]
    await asyncio.wait_for(ready.wait(), 60)
    start = time.monotonic_ns()
    assert child.stdin is not None
    child.stdin.write(f"{name} {count} {pace}\n")
    child.stdin.flush()
    lasts = await asyncio.wait_for(asyncio.gather(*tasks), 600)
    seconds = (max(lasts) - start) / 1e9
    latencies = sorted(lat for out in outs for _, lat in out)
    missed = sum(count - len({seq for seq, _ in out}) for out in outs)
    result: dict[str, Any] = {
        "workload": f"sessions_sse_{name}",
        "subscribers": subscribers,
        "updates": count,
        "seconds": round(seconds, 4),
        "missed": missed,
        "latency_median_ms": round(statistics.median(latencies) / 1e6, 3),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] / 1e6, 3),
    }
    if name == "burst":
        result["updates_per_s"] = round(count / seconds)
        result["deliveries_per_s"] = round(count * subscribers / seconds)
    return result


async def _run(subscribers: int, burst: int, paced: int) -> None:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        port = int(await asyncio.to_thread(child.stdout.readline))
        for name, count, pace in (("burst", burst, 0.0), ("paced", paced, 5.0)):
            result = await _phase(port, child, name, subscribers, count, pace)
            result["python"] = platform.python_version()
            print(json.dumps(result), flush=True)
    finally:
        if child.stdin is not None:
            child.stdin.write("quit\n")
            child.stdin.flush()
        child.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="20 subscribers, 300 updates")
    parser.add_argument("--subscribers", type=int, default=None)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    subscribers = args.subscribers or (20 if args.quick else 100)
    burst, paced = (300, 100) if args.quick else (2000, 400)
    asyncio.run(_run(subscribers, burst, paced))


if __name__ == "__main__":
    main()
