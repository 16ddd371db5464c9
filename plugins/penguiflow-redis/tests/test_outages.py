"""The redis runtime under outages: ambiguous emits, dead letters, silent workers, bad starts.

Each test is a regression test for a way a trace used to run twice, vanish, or hang.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from pydantic_core import to_json

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from penguiflow_redis import RedisFlow, RedisRuntime, RedisRuntimeUnavailable
from waiting import until
from workers import HERE, free_port

from penguiflow import Headers, Message, Node, NodePolicy, create, join_k
from penguiflow.errors import FlowError
from penguiflow.testing import run_async

HEADERS = Headers(tenant="outages")


async def _echo(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": f"done {message.payload}"})


class CuttingProxy:
    """A TCP proxy in front of Redis that, once armed, lets the next script call (EVALSHA)
    reach Redis and run, then drops the connection instead of relaying the answer: the client
    cannot know whether its command ran."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.armed = False
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        listen_port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{listen_port}/0"

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(client_out)
        server_in, server_out = await asyncio.open_connection(self.host, self.port)
        self._writers.add(server_out)
        cutting = False

        async def upstream() -> None:
            nonlocal cutting
            while data := await client_in.read(65536):
                if self.armed and b"EVALSHA" in data:
                    self.armed, cutting = False, True
                server_out.write(data)
                await server_out.drain()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                if cutting:  # the command ran; its answer never arrives
                    self.cuts += 1
                    client_out.transport.abort()
                    server_out.close()
                    return
                client_out.write(data)
                await client_out.drain()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        client_out.close()
        server_out.close()


def test_an_ambiguous_emit_can_be_retried_without_running_the_trace_twice(
    redis_url: str,
) -> None:
    """Regression: the connection dropped after Redis ran the XADD but before the reply; the
    emit said "was not sent, try again", and the retry ran the trace twice."""
    name = f"outage-{uuid.uuid4().hex[:10]}"
    node = Node(_echo, name="echo", policy=NodePolicy(validate="none"))

    async def scenario() -> None:
        target = redis_url.split("//", 1)[1].split("/", 1)[0]
        host, port = target.split(":")
        proxy = CuttingProxy(host, int(port))
        proxy_url = await proxy.start()
        # One worker reads straight from Redis, one message at a time (so order shows
        # duplicates); the client talks through the proxy.
        worker_side = create(
            node.to(),
            runtime=RedisRuntime(
                f"{redis_url}?flow_name={name}", embedded_workers=1, concurrency=1
            ),
        )
        client = create(node.to(), runtime=RedisRuntime(f"{proxy_url}?flow_name={name}"))
        assert isinstance(client, RedisFlow)
        worker_side.run()
        client.run()
        try:
            await client.emit(Message(payload="warm-up", headers=HEADERS))  # loads the script
            assert (await asyncio.wait_for(client.fetch(), 20)).payload == "done warm-up"
            first = Message(payload="once", headers=HEADERS)
            proxy.armed = True
            with pytest.raises(RedisRuntimeUnavailable, match="may or may not have been") as e:
                await client.emit(first)
            assert "emitting it again is safe" in str(e.value) and proxy.cuts == 1
            await client.emit(first)  # the retry the error invites
            await client.emit(Message(payload="after", headers=HEADERS))
            results = [(await asyncio.wait_for(client.fetch(), 20)).payload for _ in range(2)]
            assert results == ["done once", "done after"]
            # Once its result arrived, the same message of the trace may be emitted afresh.
            await client.emit(first)
            assert (await asyncio.wait_for(client.fetch(), 20)).payload == "done once"
        finally:
            await client.stop()
            await worker_side.stop()
            await proxy.aclose()

    run_async(scenario, timeout=120)


def test_a_dead_letter_reaches_the_client_whatever_emit_errors_to_rookery_says(
    redis_url: str,
) -> None:
    """Regression: a message whose payload the workers cannot rebuild went to the dead letters
    and its trace vanished (the client's fetch never returned); its join buckets stayed."""
    first = Node(_echo, name="first", policy=NodePolicy(validate="none"))
    join = join_k("join", 2)

    async def scenario() -> None:
        flow = create(
            first.to(join),
            join.to(),
            runtime=RedisRuntime(
                f"{redis_url}?flow_name=dead-{uuid.uuid4().hex[:10]}", embedded_workers=1
            ),
        )
        assert isinstance(flow, RedisFlow)
        flow.run()
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            trace = uuid.uuid4().hex
            bucket = f"{flow.namespace}:join:join:{trace}"
            await client.rpush(bucket, "half of a join")  # the trace had reached the join
            envelope = {"i": {"t": "nowhere:Unknown", "v": {}}, "tr": trace, "r": flow._reply}
            await client.xadd(f"{flow.namespace}:in:first", {"e": to_json(envelope).decode()})
            error = await asyncio.wait_for(flow.fetch(), 20)
            assert isinstance(error, FlowError) and error.trace_id == trace
            assert "cannot be decoded" in error.message and "payload_types" in error.message
            assert await client.exists(bucket) == 0
            assert len(await client.xrange(f"{flow.namespace}:dead")) == 1
        finally:
            await flow.stop()
            await client.aclose()

    run_async(scenario, timeout=60)


def test_entries_of_a_live_worker_are_not_taken_and_no_death_is_counted(
    redis_url: str,
) -> None:
    """Regression: max_deliveries counted deliveries, so a healthy message handed out many
    times (a busy machine, claims of idle entries) was dead-lettered. Only workers that died
    holding a message count."""
    node = Node(_echo, name="echo", policy=NodePolicy(validate="none"))
    name = f"live-{uuid.uuid4().hex[:10]}"
    options = "claim_idle_s=0.2&block_s=0.2&max_deliveries=1"

    async def scenario() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        flow = create(node.to(), runtime=RedisRuntime(f"{redis_url}?flow_name={name}&{options}"))
        assert isinstance(flow, RedisFlow)
        flow.run()  # the client only: no worker yet
        serving = create(
            node.to(),
            runtime=RedisRuntime(f"{redis_url}?flow_name={name}&{options}", embedded_workers=1),
        )
        stream = f"{flow.namespace}:in:echo"
        try:
            await client.xgroup_create(stream, "workers", id="0", mkstream=True)
            message = Message(payload="busy", headers=HEADERS)
            await flow.emit(message)
            # A live worker ("busy") holds it, idle past claim_idle_s, handed out 10 times.
            await client.xreadgroup("workers", "busy", {stream: ">"}, count=1)
            entry_id = (await client.xrange(stream))[0][0]
            await client.xclaim(stream, "workers", "busy", 0, [entry_id], idle=5000, retrycount=10)
            heartbeat = f"{flow.namespace}:alive:busy"  # what a running worker keeps up
            await client.set(heartbeat, "1", px=1000)
            serving.run()
            deadline = time.monotonic() + 3.0  # many claim cycles of the new worker
            while time.monotonic() < deadline:
                await client.set(heartbeat, "1", px=1000)
                pending = await client.xpending_range(stream, "workers", "-", "+", 10)
                assert [row["consumer"] for row in pending] == ["busy"]  # never taken
                await asyncio.sleep(0.05)
            assert await client.xlen(f"{flow.namespace}:dead") == 0
            # Once "busy" stops its heartbeat, it counts as dead: one death, then the dead
            # letters (max_deliveries=1).
            error = await asyncio.wait_for(flow.fetch(), 30)
            assert isinstance(error, FlowError) and error.metadata["deaths"] == 1
        finally:
            await serving.stop()
            await flow.stop()
            await client.aclose()

    run_async(scenario, timeout=90)


def test_silent_consumers_holding_nothing_are_removed(redis_url: str) -> None:
    """Regression: dead workers stayed in the consumer groups for ever."""
    node = Node(_echo, name="echo", policy=NodePolicy(validate="none"))
    options = "claim_idle_s=0.2&block_s=0.1&forget_consumers_after_s=0.3"

    async def scenario() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        flow = create(
            node.to(),
            runtime=RedisRuntime(
                f"{redis_url}?flow_name=gone-{uuid.uuid4().hex[:10]}&{options}",
                embedded_workers=1,
            ),
        )
        assert isinstance(flow, RedisFlow)
        stream = f"{flow.namespace}:in:echo"
        await client.xgroup_create(stream, "workers", id="0", mkstream=True)
        await client.xgroup_createconsumer(stream, "workers", "ghost-of-a-killed-worker")
        flow.run()
        try:

            async def gone() -> bool:
                names = [row["name"] for row in await client.xinfo_consumers(stream, "workers")]
                return "ghost-of-a-killed-worker" not in names

            await until(gone, "the silent consumer to be removed")
            await flow.emit(Message(payload=1, headers=HEADERS))  # the live one still serves
            assert (await asyncio.wait_for(flow.fetch(), 20)).payload == "done 1"
        finally:
            await flow.stop()
            await client.aclose()

    run_async(scenario, timeout=60)


def test_a_worker_pointed_at_nothing_exits_with_an_error(tmp_path: Path) -> None:
    """Regression: it printed one warning and idled for ever."""
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "penguiflow.cli",
            "worker",
            "distributed_app:build",
            "--runtime",
            url,
            "--connect-timeout",
            "1",
        ],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "no Redis answered at 127.0.0.1" in done.stderr
    assert "--connect-timeout" in done.stderr
    assert "secret" not in done.stderr


def test_a_build_function_that_fails_is_a_clear_error(tmp_path: Path) -> None:
    """Regression: an error in the user's build function was a raw traceback."""
    (tmp_path / "broken_app.py").write_text(
        "def build():\n    raise ValueError('no flow today')\n", encoding="utf-8"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "penguiflow.cli",
            "worker",
            "broken_app:build",
            "--runtime",
            "redis://127.0.0.1:6390/0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "building the flow 'broken_app:build' failed: ValueError: no flow today" in done.stderr
    assert "broken_app.py:2" in done.stderr and "Traceback" not in done.stderr
