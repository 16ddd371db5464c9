"""The client's cost per message: emits that queue up share a round trip, one length check per
stream whatever the number of emitters, results read and deleted in one round trip; and none
of it loses a message or an error."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as redis
from penguiflow_redis import RedisFlow, RedisRuntime, RedisRuntimeUnavailable
from penguiflow_redis._emits import EmitBatcher
from penguiflow_redis._worker import connection_errors
from waiting import until

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.testing import run_async

HEADERS = Headers(tenant="batching")
EMITTERS = 64


async def _echo(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": f"done {message.payload}"})


def _flow(url: str, **options: Any) -> RedisFlow:
    name = f"batching-{uuid.uuid4().hex[:10]}"
    node = Node(_echo, name="echo", policy=NodePolicy(validate="none"))
    flow = create(node.to(), runtime=RedisRuntime(f"{url}?flow_name={name}", **options))
    assert isinstance(flow, RedisFlow)
    return flow


async def _forget(url: str, flow: RedisFlow) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{flow.namespace}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _connections(flow: RedisFlow) -> int:
    pool = flow._client.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


def test_emits_that_queue_up_share_a_round_trip_and_each_arrives_once(redis_url: str) -> None:
    flow = _flow(redis_url)

    async def scenario() -> None:
        flow.run()
        try:
            messages = [Message(payload=i, headers=HEADERS) for i in range(EMITTERS)]
            await asyncio.gather(*(flow.emit(m) for m in messages))
            emits = flow._emits
            assert emits is not None and emits.calls == EMITTERS
            # The first goes at once; the others queue behind it and go together (usually in
            # one pipeline: a slow machine may split them where a length check intervenes).
            assert emits.round_trips <= EMITTERS // 8, emits.round_trips
            client = redis.Redis.from_url(redis_url, decode_responses=True)
            try:
                entries = await client.xrange(f"{flow.namespace}:in:echo")
            finally:
                await client.aclose()
            traces = sorted(e["e"].split('"tr":"')[1].split('"')[0] for _, e in entries)
            assert traces == sorted(m.trace_id for m in messages)
        finally:
            await flow.stop()
            await _forget(redis_url, flow)

    run_async(scenario)


def test_a_lone_emit_is_one_round_trip(redis_url: str) -> None:
    flow = _flow(redis_url)

    async def scenario() -> None:
        flow.run()
        try:
            for i in range(3):
                await flow.emit(Message(payload=i, headers=HEADERS))
            assert flow._emits is not None and flow._emits.round_trips == 3
        finally:
            await flow.stop()
            await _forget(redis_url, flow)

    run_async(scenario)


def test_the_same_message_emitted_together_is_enqueued_once(redis_url: str) -> None:
    """Batched, every emit is still its own EMIT_SCRIPT call: the per-trace dedup holds."""
    flow = _flow(redis_url)

    async def scenario() -> None:
        flow.run()
        try:
            message = Message(payload="same", headers=HEADERS)
            other = Message(payload="other", headers=HEADERS)
            await asyncio.gather(*(flow.emit(m) for m in [message] * 10 + [other]))
            assert flow._emits is not None and flow._emits.round_trips < 11
            client = redis.Redis.from_url(redis_url)
            try:
                assert await client.xlen(f"{flow.namespace}:in:echo") == 2
            finally:
                await client.aclose()
        finally:
            await flow.stop()
            await _forget(redis_url, flow)

    run_async(scenario)


def test_concurrent_emitters_share_one_length_check(redis_url: str) -> None:
    """Regression: each of 64 concurrent emits read the stream's length itself, each on a
    connection of its own (64 connections opened by one client)."""
    flow = _flow(redis_url)

    async def scenario() -> None:
        flow.run()
        try:
            await asyncio.gather(
                *(flow.emit(Message(payload=i, headers=HEADERS)) for i in range(EMITTERS))
            )
            assert flow._gate is not None and flow._gate.checks == 1
            # the reader's, one for emits and the length check (redis-py's pool may reuse it)
            assert _connections(flow) <= 3, _connections(flow)
        finally:
            await flow.stop()
            await _forget(redis_url, flow)

    run_async(scenario)


def test_a_full_backlog_still_holds_concurrent_emitters_back(redis_url: str) -> None:
    flow = _flow(redis_url, max_backlog=5)

    async def scenario() -> None:
        flow.run()
        client = redis.Redis.from_url(redis_url)
        stream = f"{flow.namespace}:in:echo"
        try:
            # Full before anyone emits (no worker takes entries), so every reading says so.
            for i in range(5):
                await client.xadd(stream, {"e": f"filler {i}"})
            emitting = [
                asyncio.ensure_future(flow.emit(Message(payload=i, headers=HEADERS)))
                for i in range(3)
            ]
            # They keep checking (one length check at a time) and none goes through.
            await until(lambda: flow._gate is not None and flow._gate.checks >= 3, "checks")
            assert not any(task.done() for task in emitting)
            assert await client.xlen(stream) == 5
            # Room made: the waiting emits go through.
            entries = await client.xrange(stream, count=3)
            await client.xdel(stream, *(entry_id for entry_id, _ in entries))
            await asyncio.wait_for(asyncio.gather(*emitting), 20)
            assert await client.xlen(stream) == 5
        finally:
            await client.aclose()
            await flow.stop()
            await _forget(redis_url, flow)

    run_async(scenario)


def test_results_are_fetched_and_deleted_from_the_reply_stream(redis_url: str) -> None:
    flow = _flow(redis_url, embedded_workers=1)

    async def scenario() -> None:
        flow.run()
        client = redis.Redis.from_url(redis_url)
        try:
            messages = [Message(payload=i, headers=HEADERS) for i in range(20)]
            await asyncio.gather(*(flow.emit(m) for m in messages))
            results = [await asyncio.wait_for(flow.fetch(), 20) for _ in messages]
            assert sorted(r.payload for r in results) == sorted(f"done {i}" for i in range(20))
            # The entries read are deleted with the next read (one round trip for both).
            deadline = time.monotonic() + 20
            while await client.xlen(flow._reply) > 0:
                assert time.monotonic() < deadline, "the reply stream kept read entries"
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
            await flow.stop()
            await _forget(redis_url, flow)

    run_async(scenario, timeout=60)


class HoldingProxy:
    """A TCP proxy in front of Redis. While `holding`, data carrying EVALSHA is kept from Redis
    (so a script call stays on the wire); `cut()` then drops every connection and refuses new
    ones, as a Redis that went away would."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.holding = False
        self.held = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(client_out)
        server_in, server_out = await asyncio.open_connection(self.host, self.port)
        self._writers.add(server_out)

        async def upstream() -> None:
            while data := await client_in.read(65536):
                if self.holding and b"EVALSHA" in data:
                    self.held += 1
                    continue
                server_out.write(data)
                await server_out.drain()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                client_out.write(data)
                await client_out.drain()

        try:
            await asyncio.gather(upstream(), downstream())
        finally:
            client_out.transport.abort()
            server_out.transport.abort()


def test_every_emit_of_a_batch_hears_that_redis_went_away(redis_url: str) -> None:
    """Nothing is dropped silently: the emit on the wire and every emit queued behind it raise
    RedisRuntimeUnavailable, each saying what may have happened to its own message."""
    host, port = redis_url.split("//", 1)[1].split("/", 1)[0].split(":")

    async def scenario() -> None:
        proxy = HoldingProxy(host, int(port))
        flow = _flow(await proxy.start())
        flow.run()
        try:
            await flow.emit(Message(payload="warm-up", headers=HEADERS))  # loads the script
            proxy.holding = True
            emitting = [
                asyncio.ensure_future(flow.emit(Message(payload=i, headers=HEADERS)))
                for i in range(20)
            ]
            emits = flow._emits
            assert emits is not None
            await until(lambda: proxy.held >= 1 and len(emits._queue) == 19, "a queued batch")
            await proxy.cut()
            outcomes = await asyncio.wait_for(asyncio.gather(*emitting, return_exceptions=True), 60)
            assert all(isinstance(o, RedisRuntimeUnavailable) for o in outcomes), outcomes
            # The ones queued behind the call on the wire never left: each is told so.
            assert all("was not sent" in str(o) for o in outcomes[1:]), outcomes[1:]
        finally:
            with contextlib.suppress(RedisRuntimeUnavailable):
                await flow.stop()
            await proxy.cut()
            await _forget(redis_url, flow)

    run_async(scenario, timeout=120)


def test_a_batch_to_an_unreachable_redis_fails_every_call() -> None:
    async def scenario() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # nothing listens once it is closed
        client = redis.Redis(host="127.0.0.1", port=port, retry=None)
        batcher = EmitBatcher(client)
        try:
            outcomes = await asyncio.gather(
                *(batcher.call("return 1", [], []) for _ in range(10)), return_exceptions=True
            )
        finally:
            await batcher.aclose()
            await client.aclose()
        assert all(isinstance(o, connection_errors()) for o in outcomes), outcomes
        assert batcher.calls == 10 and batcher.round_trips == 2

    run_async(scenario)


@pytest.mark.parametrize("alone", [True, False])
def test_a_script_error_reaches_only_its_own_caller(redis_url: str, alone: bool) -> None:
    failing = "return redis.call('NOSUCHCOMMAND')"

    async def scenario() -> list[Any]:
        client = redis.Redis.from_url(redis_url)
        batcher = EmitBatcher(client)
        try:
            if alone:
                return [await asyncio.gather(batcher.call(failing, [], []), return_exceptions=True)]
            # The first goes at once; the failing one and the last share the next pipeline.
            calls = [
                batcher.call(failing if i == 1 else "return ARGV[1]", [], [str(i)])
                for i in range(3)
            ]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await batcher.aclose()
            await client.aclose()

    outcomes = run_async(scenario)
    if alone:
        outcomes = outcomes[0]
    else:
        assert outcomes[0] == b"0" and outcomes[2] == b"2"
    error = outcomes[0 if alone else 1]
    assert isinstance(error, redis.ResponseError), error


def test_a_lost_script_cache_is_reloaded_for_lone_and_batched_calls(redis_url: str) -> None:
    """A restarted Redis forgets its scripts: the calls that got NOSCRIPT did not run, so they
    are sent again after loading the script, alone or in a batch."""
    suffix = uuid.uuid4().hex  # a script of this test's own, not in the cache already
    script = f"return ARGV[1] .. '-{suffix}'"

    async def scenario() -> list[Any]:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        batcher = EmitBatcher(client)
        try:
            await batcher.call(script, [], ["warm-up"])
            await client.script_flush()
            alone = await batcher.call(script, [], ["alone"])
            await client.script_flush()
            together = await asyncio.gather(*(batcher.call(script, [], [str(i)]) for i in range(4)))
            return [alone, *together]
        finally:
            await batcher.aclose()
            await client.aclose()

    answers = run_async(scenario)
    assert answers == [f"{label}-{suffix}" for label in ("alone", "0", "1", "2", "3")]


def test_trace_inboxes_stay_bounded_and_an_evicted_trace_still_gets_its_results(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every `emit(trace_id=...)` left an inbox behind for ever (a web app tracing
    each request grew one per request). Idle ones past the cap are forgotten; a result that
    arrives for a forgotten trace waits in the shared inbox and moves back to the trace's inbox
    when it is fetched by trace id."""
    from penguiflow_redis import _client

    monkeypatch.setattr(_client, "_MAX_IDLE_TRACE_INBOXES", 3)
    flow = _flow(redis_url, embedded_workers=1)

    async def scenario() -> None:
        flow.run()
        try:
            # Held: emitted, its result not fetched yet (kept whatever its age).
            await flow.emit(Message(payload="held", headers=HEADERS), trace_id="held")
            for n in range(8):
                await flow.emit(Message(payload=n, headers=HEADERS), trace_id=f"t{n}")
                result = await asyncio.wait_for(flow.fetch(trace_id=f"t{n}"), 20)
                assert result.payload == f"done {n}"
            assert len(flow._trace_inboxes) <= 3 + 1
            assert "held" in flow._trace_inboxes
            held = await asyncio.wait_for(flow.fetch(trace_id="held"), 20)
            assert held.payload == "done held"
            # t0 was forgotten: its next result goes to the shared inbox, and a fetch by its
            # trace id still finds it.
            assert "t0" not in flow._trace_inboxes
            await flow.emit(Message(payload="again", headers=HEADERS, trace_id="t0"))
            await until(lambda: bool(flow._results.items), "t0's result in the shared inbox")
            again = await asyncio.wait_for(flow.fetch(trace_id="t0"), 20)
            assert again.payload == "done again" and not flow._results.items
        finally:
            await flow.stop()
            await _forget(redis_url, flow)

    run_async(scenario, timeout=90)
