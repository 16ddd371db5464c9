"""Passwords in Redis URLs never reach a message, a log line, a repr or the worker's ready
line; schemes are accepted in any case (`REDIS://` is routed here by the kernel)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from penguiflow_redis import RedisMessageBus, RedisRuntime, RedisRuntimeUnavailable
from penguiflow_redis.store import RedisStateStore
from workers import WorkerProcesses, free_port

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.bus import BusEnvelope
from penguiflow.errors import ConfigurationError
from penguiflow.plugins import resolve_driver
from penguiflow.state import StoreClosedError, StoredEvent
from penguiflow.testing import run_async

SECRET = "s3cret-Pa55"


def secret_url(port: int = 6379, scheme: str = "redis") -> str:
    return f"{scheme}://:{SECRET}@127.0.0.1:{port}/0"


def test_reprs_hide_the_password() -> None:
    runtime = RedisRuntime(secret_url())
    store = RedisStateStore(secret_url())
    bus = RedisMessageBus(secret_url())
    for shown in (repr(runtime), repr(store), repr(bus)):
        assert SECRET not in shown and "redis://:***@127.0.0.1:6379/0" in shown, shown
    run_async(store.aclose)
    run_async(bus.aclose)


@pytest.mark.parametrize("make", [RedisRuntime, RedisStateStore, RedisMessageBus])
def test_a_refused_url_is_shown_without_its_password(make: type) -> None:
    with pytest.raises(ConfigurationError) as info:
        make(f"http://app:{SECRET}@127.0.0.1:6379/0")
    assert SECRET not in str(info.value) and "http://app:***@127.0.0.1:6379/0" in str(info.value)


@pytest.mark.parametrize("scheme", ["REDIS", "Redis", "rEdIs"])
def test_mixed_case_schemes_are_accepted(scheme: str) -> None:
    """Regression: the kernel routed `REDIS://` here, and the plugin refused it with the
    whole URL (password included) in the message."""
    runtime = resolve_driver("runtime", secret_url(scheme=scheme))
    store = resolve_driver("state_store", secret_url(scheme=scheme))
    bus = resolve_driver("message_bus", secret_url(scheme=scheme))
    assert isinstance(runtime, RedisRuntime) and runtime.url.startswith("redis://")
    assert isinstance(store, RedisStateStore) and store.url.startswith("redis://")
    assert isinstance(bus, RedisMessageBus) and bus.url.startswith("redis://")
    run_async(store.aclose)
    run_async(bus.aclose)


def test_a_store_and_bus_on_an_uppercase_url_work(redis_url: str) -> None:
    scheme, rest = redis_url.split("://", 1)
    upper = f"{scheme.upper()}://{rest}"

    async def scenario() -> None:
        prefix = f"pftest{uuid.uuid4().hex[:12]}"
        async with RedisStateStore(upper, prefix=prefix) as store:
            event = StoredEvent(
                trace_id="t", ts=1.0, kind="node_start", node_name="n", node_id="n1", payload={}
            )
            await store.save_event(event)
            assert [e.kind for e in await store.load_history("t")] == ["node_start"]
        async with RedisMessageBus(upper, prefix=prefix) as bus:
            envelope = BusEnvelope(
                edge="a->b", source="a", target="b", trace_id="t", payload=1, headers={}, meta={}
            )
            await bus.publish(envelope)
            assert [e.payload for e in await bus.read_all()] == [1]
        with pytest.raises(StoreClosedError) as info:
            await store.load_history("t")
        assert "RedisStateStore at redis://" in str(info.value)

    run_async(scenario)


def test_an_unreachable_redis_is_named_without_its_password() -> None:
    async def passthrough(message: Message, ctx: object) -> Message:
        return message

    async def scenario() -> None:
        node = Node(passthrough, name="n", policy=NodePolicy(validate="none"))
        flow = create(node.to(), runtime=secret_url(free_port()))
        flow.run()
        try:
            with pytest.raises(RedisRuntimeUnavailable) as info:
                await flow.emit(Message(payload=1, headers=Headers(tenant="t")), trace_id="t")
        finally:
            await flow.stop()
        assert SECRET not in str(info.value) and ":***@127.0.0.1" in str(info.value)

    run_async(scenario)


@pytest.fixture
def password_redis(redis_url: str, tmp_path: Path) -> Iterator[int]:
    """A redis-server of this test's own that requires a password (the shared test server is
    left alone); `redis_url` makes the test skip, or fail under CI, where Redis is missing."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server answers at PENGUIFLOW_REDIS_URL but is not on PATH"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--requirepass", SECRET,
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"-NOAUTH"):  # up, and asking for the password
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"redis-server on port {port} did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("scheme", ["redis", "REDIS"])
def test_the_worker_ready_line_hides_the_password(
    scheme: str, password_redis: int, tmp_path: Path
) -> None:
    """Regression: `penguiflow worker` printed `... on redis://:<password>@host ...`."""
    url = secret_url(password_redis, scheme=scheme) + f"?flow_name=mask-{uuid.uuid4().hex[:8]}"
    pool = WorkerProcesses(url, tmp_path, env={"PYTHONUNBUFFERED": "1"})
    proc = pool.start()
    pool.stop_all()
    log = proc.log_path.read_text()  # type: ignore[attr-defined]
    ready = next(line for line in log.splitlines() if "penguiflow worker ready" in line)
    assert f"redis://:***@127.0.0.1:{password_redis}/0" in ready, ready
    assert SECRET not in log, log
