"""Workers publish their streams' backlog, pending entries and dead letters as events
(`flow.stream_stats`, `flow.dead_letters`, `flow.dead_letter`) while event sinks listen."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as redis
from penguiflow_redis import RedisFlow, RedisRuntime
from pydantic_core import to_json
from waiting import until

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.errors import FlowError
from penguiflow.observability import Event, add_event_sink
from penguiflow.testing import run_async

HEADERS = Headers(tenant="stats")


def test_stream_stats_pending_entries_and_dead_letters_are_published(redis_url: str) -> None:
    release = asyncio.Event()
    started = 0

    async def slow(message: Message, ctx: Any) -> Message:
        nonlocal started
        started += 1
        await release.wait()
        return message

    node = Node(slow, name="slow", policy=NodePolicy(validate="none"))
    events: list[Event] = []

    async def sink(event: Event) -> None:
        if event.name in ("stream_stats", "dead_letters", "dead_letter"):
            events.append(event)

    def latest(name: str, **attributes: str) -> Event | None:
        found = [
            e
            for e in events
            if e.name == name and all(e.attributes.get(k) == v for k, v in attributes.items())
        ]
        return found[-1] if found else None

    async def scenario() -> None:
        remove = add_event_sink(sink)
        runtime = RedisRuntime(
            f"{redis_url}?flow_name=stats-{uuid.uuid4().hex[:10]}",
            embedded_workers=1,
            concurrency=2,
            stats_interval_s=0.05,
        )
        flow = create(node.to(), runtime=runtime)
        assert isinstance(flow, RedisFlow)
        flow.run()
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            for n in range(3):
                await flow.emit(Message(payload=n, headers=HEADERS))
            await until(lambda: started == 2, "two messages in progress")

            def busy() -> bool:
                stats = latest("stream_stats", stream="slow")
                return stats is not None and stats.measurements["pending"] == 2

            await until(busy, "stats showing the two entries in progress")
            stats = latest("stream_stats", stream="slow")
            assert stats is not None
            assert stats.attributes["runtime"] == "redis"
            assert stats.attributes["flow"] == flow.namespace
            assert stats.measurements["length"] == 3  # two in progress, one queued
            assert stats.measurements["oldest_pending_age_s"] >= 0
            assert stats.span is None and stats.trace_id is None  # about a stream, not a trace

            # An entry no worker can decode goes to the dead letters: one event as it moves,
            # and the dead-letter count in the next report.
            envelope = {"i": {"t": "nowhere:Unknown", "v": {}}, "tr": uuid.uuid4().hex}
            envelope["r"] = flow._reply
            await client.xadd(f"{flow.namespace}:in:slow", {"e": to_json(envelope).decode()})
            release.set()
            results = [await asyncio.wait_for(flow.fetch(), 20) for _ in range(4)]
            assert sum(isinstance(r, FlowError) for r in results) == 1
            moved = latest("dead_letter", stream="slow")
            assert moved is not None and moved.attributes["reason"] == "decode_error"

            def drained() -> bool:
                stats = latest("stream_stats", stream="slow")
                dead = latest("dead_letters")
                return (
                    stats is not None
                    and stats.measurements["length"] == 0
                    and stats.measurements["pending"] == 0
                    and dead is not None
                    and dead.measurements["count"] == 1
                )

            await until(drained, "stats showing an empty stream and one dead letter")
            stats = latest("stream_stats", stream="slow")
            assert stats is not None and stats.measurements["oldest_pending_age_s"] == 0
        finally:
            remove()
            await flow.stop()
            await client.aclose()

    run_async(scenario, timeout=60)


def test_nothing_is_read_without_sinks() -> None:
    """No sink: the worker's report costs one check, never a round trip to Redis."""
    from penguiflow_redis._stats import publish_stream_stats
    from penguiflow_redis._streams import FlowKeys

    class Untouchable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"Redis was used ({name}) with no event sink listening")

    import pluggy

    from penguiflow.observability import enabled
    from penguiflow.plugins import HookHost, reset_hooks

    # No hook plugin either, whatever this environment has installed.
    reset_hooks(HookHost(manager=pluggy.PluginManager("penguiflow")))
    try:
        assert not enabled()
        run_async(lambda: publish_stream_stats(Untouchable(), FlowKeys("pf:x"), ["a"]))
    finally:
        reset_hooks(None)


def test_stats_interval_is_an_option_of_the_url() -> None:
    runtime = RedisRuntime("redis://127.0.0.1:6379/0?stats_interval_s=2.5")
    assert runtime.settings.stats_interval_s == 2.5
