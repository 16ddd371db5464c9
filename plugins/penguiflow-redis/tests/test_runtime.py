"""The redis runtime against a real redis-server, with nodes on real worker processes."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from distributed_app import Job, build, build_join
from penguiflow_redis import PayloadTypeError, RedisFlow, RedisRuntime, RedisRuntimeUnavailable
from waiting import until
from workers import RedisServer, WorkerProcesses

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.core import BUDGET_EXCEEDED_TEXT, DEADLINE_EXCEEDED_TEXT
from penguiflow.current import current_context
from penguiflow.errors import FlowError
from penguiflow.node import CircuitBreakerPolicy
from penguiflow.runtime import define_flow
from penguiflow.testing import RuntimeConformance, run_async
from penguiflow.types import WM, FinalAnswer, StreamChunk

HEADERS = Headers(tenant="test")


def job(n: int, delay: float = 0.0, **fields: Any) -> Message:
    return Message(payload=Job(n=n, delay=delay), headers=HEADERS, **fields)


def scoped(url: str, **options: Any) -> str:
    """The URL with a fresh flow name, so tests never read each other's streams."""
    query = "&".join(f"{key}={value}" for key, value in options.items())
    name = f"test-{uuid.uuid4().hex[:10]}"
    return f"{url}?flow_name={name}" + (f"&{query}" if query else "")


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    markers = tmp_path / "markers"
    markers.mkdir()
    pool = WorkerProcesses(redis_url, tmp_path, env={"PF_TEST_MARKERS": str(markers)})
    pool.markers = markers  # type: ignore[attr-defined]
    yield pool
    pool.stop_all()


async def fetch_all(flow: Any, count: int, timeout: float = 30.0) -> list[str]:
    async def collect() -> list[str]:
        return [(await flow.fetch()).payload.text for _ in range(count)]

    return await asyncio.wait_for(collect(), timeout)


async def nothing_more(flow: Any, wait: float) -> None:
    with pytest.raises(TimeoutError):
        extra = await asyncio.wait_for(flow.fetch(), wait)
        pytest.fail(f"unexpected extra result {extra!r}")


# -- the kernel's suite ----------------------------------------------------------------------


class TestRedisRuntimeConformance(RuntimeConformance):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> None:
        self.url = redis_url

    async def make_runtime(self) -> Any:
        return RedisRuntime(scoped(self.url), embedded_workers=1)

    async def make_ordered_runtime(self) -> Any:
        # A worker runs up to `concurrency` messages of a node at once; order per edge holds
        # for one at a time.
        return RedisRuntime(scoped(self.url), embedded_workers=1, concurrency=1)


# -- worker processes ------------------------------------------------------------------------


def test_two_workers_share_the_load(workers: WorkerProcesses) -> None:
    url = scoped(workers.url)
    first, second = workers.start(url=url), workers.start(url=url)

    async def scenario() -> None:
        flow = build(runtime=url)
        flow.run()
        try:
            for n in range(40):
                await flow.emit(job(n, delay=0.05))
            answers = await fetch_all(flow, 40)
        finally:
            await flow.stop()
        numbers = sorted(int(a.split(":")[0]) for a in answers)
        assert numbers == list(range(40))
        pids = {int(a.split(":")[1]) for a in answers}
        assert pids == {first.pid, second.pid}

    run_async(scenario)


def test_sigkilled_worker_loses_nothing_and_no_trace_completes_twice(
    workers: WorkerProcesses,
) -> None:
    url = scoped(workers.url, claim_idle_s=1, concurrency=4)
    victim = workers.start(url=url)
    survivor = workers.start(url=url)

    async def scenario() -> None:
        flow = build(runtime=url)
        flow.run()
        try:
            for n in range(30):
                await flow.emit(job(n, delay=0.3))
            answers = await fetch_all(flow, 3)
            victim.send_signal(signal.SIGKILL)  # mid-run: it holds up to 4 entries
            victim.wait()
            answers += await fetch_all(flow, 27)
            await nothing_more(flow, 2.5)  # past claim_idle_s: a duplicate would show now
        finally:
            await flow.stop()
        numbers = sorted(int(a.split(":")[0]) for a in answers)
        assert numbers == list(range(30))
        assert any(int(a.split(":")[1]) == survivor.pid for a in answers)

    run_async(scenario)


def test_a_restarted_worker_resumes_the_queue(workers: WorkerProcesses) -> None:
    url = scoped(workers.url)

    async def scenario() -> None:
        flow = build(runtime=url)
        flow.run()
        try:
            for n in range(10):  # no worker yet: messages wait in Redis
                await flow.emit(job(n))
            first = workers.start(url=url)
            answers = await fetch_all(flow, 10)
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=15) == 0
            assert b"penguiflow worker stopped" in first.log_path.read_bytes()  # type: ignore[attr-defined]
            for n in range(10, 15):
                await flow.emit(job(n))
            workers.start(url=url)
            answers += await fetch_all(flow, 5)
        finally:
            await flow.stop()
        assert sorted(int(a.split(":")[0]) for a in answers) == list(range(15))

    run_async(scenario)


def test_cancel_reaches_the_worker_running_the_trace(workers: WorkerProcesses) -> None:
    url = scoped(workers.url)
    workers.start(url=url)
    markers: Path = workers.markers  # type: ignore[attr-defined]

    async def scenario() -> None:
        flow = build(runtime=url)
        flow.run()
        try:
            slow = job(1, delay=60)
            await flow.emit(slow)
            await until(
                lambda: (markers / f"started-{slow.trace_id}").exists(),
                "the slow node to start",
                15.0,
            )
            assert await flow.cancel(slow.trace_id) is True
            await until(
                lambda: (markers / f"cancelled-{slow.trace_id}").exists(),
                "the slow node to be cancelled",
                15.0,
            )
            assert await flow.cancel("never-emitted") is False
            await flow.emit(job(2))
            assert (await fetch_all(flow, 1))[0].startswith("2:")
            await nothing_more(flow, 0.5)
        finally:
            await flow.stop()

    run_async(scenario)


def test_redis_restart_gives_a_clear_error_then_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    workers = WorkerProcesses(server.url, tmp_path)
    url = scoped(server.url)
    try:
        workers.start(url=url)

        async def scenario() -> None:
            flow = build(runtime=url)
            flow.run()
            try:
                await flow.emit(job(1))
                assert (await fetch_all(flow, 1))[0].startswith("1:")
                waiting = asyncio.ensure_future(flow.fetch())
                await asyncio.sleep(0.2)
                server.stop()
                with pytest.raises(RedisRuntimeUnavailable, match="results will arrive"):
                    await asyncio.wait_for(waiting, 10)
                # Regression: a fetch started once the outage was known waited for ever.
                with pytest.raises(RedisRuntimeUnavailable, match="results will arrive"):
                    await asyncio.wait_for(flow.fetch(), 10)
                with pytest.raises(RedisRuntimeUnavailable) as caught:
                    await flow.emit(job(2))
                assert f"127.0.0.1:{server.port}" in str(caught.value)
                assert "was not sent" in str(caught.value)
                server.start()
                await _until_sent(flow, job(3))
                assert (await fetch_all(flow, 1))[0].startswith("3:")
            finally:
                await flow.stop()

        run_async(scenario)
    finally:
        workers.stop_all()
        server.stop()


def test_backpressure_bounds_an_ingress_backlog(workers: WorkerProcesses) -> None:
    url = scoped(workers.url, max_backlog=3)

    async def scenario() -> None:
        flow = build(runtime=url)
        flow.run()
        try:
            for n in range(3):
                await flow.emit(job(n))
            blocked = asyncio.ensure_future(flow.emit(job(3)))
            await asyncio.sleep(0.3)
            assert not blocked.done()  # nobody consumes: the fourth message waits
            await asyncio.to_thread(workers.start, url=url)
            await asyncio.wait_for(blocked, 10)
            answers = await fetch_all(flow, 4)
        finally:
            await flow.stop()
        assert sorted(int(a.split(":")[0]) for a in answers) == [0, 1, 2, 3]

    run_async(scenario)


# -- the same semantics as the local runtime (embedded worker, same code paths) -------------


def _embedded(url: str, *adjacencies: Any, **kwargs: Any) -> RedisFlow:
    flow = create(*adjacencies, runtime=RedisRuntime(scoped(url), embedded_workers=1), **kwargs)
    assert isinstance(flow, RedisFlow)
    return flow


def test_unregistered_and_unserialisable_payloads_fail_at_emit(redis_url: str) -> None:
    from pydantic import BaseModel

    class Secret(BaseModel):
        value: int

    async def scenario() -> None:
        flow = build(runtime=scoped(redis_url))
        flow.run()
        try:
            with pytest.raises(PayloadTypeError, match=r"Secret.*payload_types=\[Secret\]"):
                await flow.emit(Message(payload=Secret(value=1), headers=HEADERS))
            with pytest.raises(PayloadTypeError, match="cannot cross processes"):
                await flow.emit(Message(payload=object(), headers=HEADERS))
            with pytest.raises(PayloadTypeError, match="meta"):
                await flow.emit(Message(payload=1, headers=HEADERS, meta={"x": object()}))
        finally:
            await flow.stop()

    run_async(scenario)


async def _answer(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": FinalAnswer(text=f"ok {message.payload}")})


async def _stream(message: Message, ctx: Any) -> Message:
    for word in ("a", "b", "c"):
        await ctx.emit_chunk(parent=message, text=word)
    await ctx.emit_chunk(parent=message, text="", done=True)
    return message.model_copy(update={"payload": FinalAnswer(text="streamed")})


async def _loop(message: Message, ctx: Any) -> Message:
    wm: WM = message.payload
    return message.model_copy(update={"payload": wm.model_copy(update={"hops": wm.hops + 1})})


_flaky_calls: dict[str, int] = {}


async def _flaky(message: Message, ctx: Any) -> Message:
    calls = _flaky_calls[message.trace_id] = _flaky_calls.get(message.trace_id, 0) + 1
    if calls < 3:
        raise RuntimeError(f"attempt {calls} fails")
    return message.model_copy(update={"payload": FinalAnswer(text=f"after {calls}")})


async def _broken(message: Message, ctx: Any) -> Message:
    raise ValueError("always broken")


def test_deadline_passed_before_the_worker_gets_it(redis_url: str) -> None:
    node = Node(_answer, name="answer", policy=NodePolicy(validate="none"))

    async def scenario() -> None:
        flow = _embedded(redis_url, node.to())
        flow.run()
        try:
            await flow.emit(Message(payload=1, headers=HEADERS, deadline_s=time.time() - 1))
            assert (await fetch_all(flow, 1)) == [DEADLINE_EXCEEDED_TEXT]
            await flow.emit(Message(payload=2, headers=HEADERS, deadline_s=time.time() + 60))
            assert (await fetch_all(flow, 1)) == ["ok 2"]
        finally:
            await flow.stop()

    run_async(scenario)


def test_chunks_stream_in_order_before_the_answer(redis_url: str) -> None:
    node = Node(_stream, name="stream", policy=NodePolicy(validate="none"))

    async def scenario() -> None:
        flow = _embedded(redis_url, node.to())
        flow.run()
        try:
            message = Message(payload=1, headers=HEADERS)
            await flow.emit(message, trace_id=message.trace_id)
            seen = []
            for _ in range(5):
                item = await asyncio.wait_for(flow.fetch(trace_id=message.trace_id), 10)
                seen.append(item.payload)
        finally:
            await flow.stop()
        chunks = [p for p in seen if isinstance(p, StreamChunk)]
        assert [(c.seq, c.text, c.done) for c in chunks] == [
            (0, "a", False),
            (1, "b", False),
            (2, "c", False),
            (3, "", True),
        ]
        assert seen[-1] == FinalAnswer(text="streamed")

    run_async(scenario)


def test_controller_loop_ends_at_its_hop_budget(redis_url: str) -> None:
    node = Node(_loop, name="loop", policy=NodePolicy(validate="none"), allow_cycle=True)

    async def scenario() -> None:
        flow = _embedded(redis_url, node.to(node))
        flow.run()
        try:
            await flow.emit(Message(payload=WM(query="q", budget_hops=3), headers=HEADERS))
            assert (await fetch_all(flow, 1)) == [BUDGET_EXCEEDED_TEXT]
        finally:
            await flow.stop()

    run_async(scenario)


def test_retries_then_errors_reach_the_caller(redis_url: str) -> None:
    flaky = Node(
        _flaky, name="flaky", policy=NodePolicy(validate="none", max_retries=2, backoff_base=0.01)
    )
    broken = Node(_broken, name="broken", policy=NodePolicy(validate="none"))

    async def scenario() -> None:
        flow = _embedded(redis_url, flaky.to(), broken.to(), emit_errors_to_rookery=True)
        flow.run()
        try:
            await flow.emit(Message(payload=1, headers=HEADERS), to=flaky)
            assert (await fetch_all(flow, 1)) == ["after 3"]
            failing = Message(payload=1, headers=HEADERS)
            await flow.emit(failing, to="broken")
            error = await asyncio.wait_for(flow.fetch(), 10)
            with pytest.raises(KeyError, match="ingress nodes: flaky, broken"):
                await flow.emit(failing, to="nowhere")
        finally:
            await flow.stop()
        assert isinstance(error, FlowError)
        assert error.code == "NODE_EXCEPTION"
        assert error.trace_id == failing.trace_id
        assert "always broken" in error.message

    run_async(scenario)


def test_options_come_from_the_url_and_bad_ones_are_named() -> None:
    runtime = RedisRuntime("redis://127.0.0.1:6390/0?claim_idle_s=2&concurrency=3&flow_name=x")
    assert runtime.url == "redis://127.0.0.1:6390/0"
    assert runtime.settings.claim_idle_s == 2.0
    assert runtime.settings.concurrency == 3
    with pytest.raises(ValueError, match="concurrency='many'"):
        RedisRuntime("redis://127.0.0.1:6390/0?concurrency=many")
    with pytest.raises(ValueError, match="given twice"):
        RedisRuntime("redis://h/0?concurrency=3", concurrency=4)
    with pytest.raises(ValueError, match="must start with redis://"):
        RedisRuntime("http://h")
    definition = define_flow(Node(_answer, name="a").to())
    with pytest.raises(TypeError, match="message_bus"):
        RedisRuntime().create_flow(definition, message_bus="memory://")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['colour'\]"):
        RedisRuntime().create_flow(definition, colour="blue")


async def _until_sent(flow: Any, message: Message, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await flow.emit(message)
            return
        except RedisRuntimeUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_stop_returns_while_the_result_reader_is_blocked(redis_url: str) -> None:
    # Regression: stop() used to cancel the reader inside a blocking XREAD, which could leave
    # it stuck in redis-py's read and hang stop() for good.
    async def scenario() -> None:
        for _ in range(3):
            flow = build(runtime=scoped(redis_url))
            flow.run()
            await asyncio.sleep(0.3)  # the reader is now blocked in XREAD
            await flow.stop()

    run_async(scenario, timeout=10)


# -- join_k across processes -------------------------------------------------------------------


def test_join_k_collects_a_trace_from_branches_on_different_workers(
    workers: WorkerProcesses,
) -> None:
    url = scoped(workers.url, concurrency=2)
    # Branch a runs on one worker, b and c on the other; both serve the join itself.
    nodes_first = ("--node", "split", "--node", "a", "--node", "join", "--node", "collect")
    nodes_second = ("--node", "b", "--node", "c", "--node", "join")
    first = workers.start(*nodes_first, url=url, target="distributed_app:build_join")
    second = workers.start(*nodes_second, url=url, target="distributed_app:build_join")

    async def scenario() -> None:
        flow = build_join(runtime=url)
        flow.run()
        try:
            for n in range(20):
                await flow.emit(job(n, delay=0.02))
            answers = await fetch_all(flow, 20)
            await nothing_more(flow, 0.5)
        finally:
            await flow.stop()
        by_number = {int(a.split(":")[0]): a.split(":") for a in answers}
        assert sorted(by_number) == list(range(20))  # one joined answer per trace
        assert all(parts[1] == "a,b,c" for parts in by_number.values())
        both = ",".join(sorted([str(first.pid), str(second.pid)]))
        assert all(parts[2] == both for parts in by_number.values())

    run_async(scenario)


# -- failure policies across processes ----------------------------------------------------------


async def _always_down(message: Any, ctx: Any) -> Any:
    raise ConnectionError("dependency down")


def test_circuit_breaker_opens_on_the_worker(redis_url: str) -> None:
    policy = NodePolicy(validate="none", circuit_breaker=CircuitBreakerPolicy(2, 60.0))
    down = Node(_always_down, name="down", policy=policy)

    async def scenario() -> None:
        flow = _embedded(redis_url, down.to(), emit_errors_to_rookery=True)
        flow.run()
        try:
            codes = []
            for _ in range(3):
                await flow.emit(Message(payload=1, headers=HEADERS))
                error = await asyncio.wait_for(flow.fetch(), 10)
                codes.append(error.code)
        finally:
            await flow.stop()
        assert codes == ["NODE_EXCEPTION", "NODE_EXCEPTION", "CIRCUIT_OPEN"]
        assert "circuit is open after 2 consecutive failures" in error.message
        assert "NodePolicy(circuit_breaker=...)" in error.message

    run_async(scenario)


def test_a_message_that_kills_every_worker_goes_to_the_dead_letters(
    workers: WorkerProcesses,
) -> None:
    url = scoped(workers.url, claim_idle_s=0.5, max_deliveries=1)
    target = "distributed_app:build"  # node errors do not go to Rookery: dead letters still do
    victim = workers.start(url=url, target=target)

    async def scenario() -> None:
        flow = build(runtime=url)
        flow.run()
        client = redis.Redis.from_url(workers.url, decode_responses=True)
        try:
            poison = Message(payload=Job(n=1, crash=True), headers=HEADERS)
            await flow.emit(poison)
            await asyncio.to_thread(victim.wait, 15)
            assert victim.returncode == 17
            survivor = workers.start(url=url, target=target)
            error = await asyncio.wait_for(flow.fetch(), 15)
            assert isinstance(error, FlowError) and error.trace_id == poison.trace_id
            assert "did not finish this message: 1 worker(s) died" in error.message
            assert error.metadata["deaths"] == 1
            dead = await client.xrange(f"{flow.namespace}:dead")
            assert len(dead) == 1 and '"crash":true' in dead[0][1]["entry"]
            await flow.emit(job(2))  # the survivor is alive and serving
            assert (await fetch_all(flow, 1))[0] == f"2:{survivor.pid}"
            survivor_log = survivor.log_path.read_text()  # type: ignore[attr-defined]
            assert "WARNING:penguiflow_redis.worker:worker" in survivor_log
            assert "took over 1 entries" in survivor_log
        finally:
            await flow.stop()
            await client.aclose()

    run_async(scenario)


def test_results_for_a_client_expire_if_it_stops_reading(redis_url: str) -> None:
    async def scenario() -> None:
        flow = build(runtime=RedisRuntime(scoped(redis_url, reply_ttl_s=60), embedded_workers=1))
        flow.run()
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await flow.emit(job(1))
            await fetch_all(flow, 1)
            ttl_ms = await client.pttl(flow._reply)
            assert 0 < ttl_ms <= 60_000
        finally:
            await flow.stop()
            await client.aclose()

    run_async(scenario)


def test_an_entry_no_worker_can_decode_goes_to_the_dead_letters(redis_url: str) -> None:
    node = Node(_answer, name="a", policy=NodePolicy(validate="none"))

    async def scenario() -> None:
        flow = _embedded(redis_url, node.to())
        flow.run()
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            stream = f"{flow.namespace}:in:a"
            await client.xadd(stream, {"e": "{not json"})
            dead: list[Any] = []
            for _ in range(100):
                dead = await client.xrange(f"{flow.namespace}:dead")
                if dead:
                    break
                await asyncio.sleep(0.05)
            assert len(dead) == 1 and dead[0][1]["entry"] == "{not json"
            assert dead[0][1]["stream"] == stream and dead[0][1]["error"]
            assert await client.xlen(stream) == 0  # taken off the node's stream
            await flow.emit(Message(payload=1, headers=HEADERS))  # the worker goes on
            await asyncio.wait_for(flow.fetch(), 10)
        finally:
            await flow.stop()
            await client.aclose()

    run_async(scenario)


async def _reports_its_context(message: Message, ctx: Any) -> Message:
    # What a connector the node calls would see, without being passed ctx.
    seen = current_context()
    return message.model_copy(update={"payload": FinalAnswer(text=f"ctx found: {seen is ctx}")})


def test_code_a_node_calls_finds_its_ctx(redis_url: str) -> None:
    """penguiflow.current under the Redis runtime: the worker sets the node's ctx around each
    invocation, as the local runtime does (connectors stream progress through it)."""
    node = Node(_reports_its_context, name="reports", policy=NodePolicy(validate="none"))

    async def scenario() -> None:
        flow = _embedded(redis_url, node.to())
        flow.run()
        try:
            await flow.emit(Message(payload=None, headers=HEADERS))
            assert (await fetch_all(flow, 1)) == ["ctx found: True"]
        finally:
            await flow.stop()
        assert current_context() is None

    run_async(scenario)
