"""Per-trace cancellation (spec §1.12) and accounting (§1.6)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import EventLog

from penguiflow.core import PenguiFlow, TraceCancelled, create
from penguiflow.node import Node, NodePolicy
from penguiflow.types import Message


def node(name: str, fn: Any, **kwargs: Any) -> Node:
    return Node(fn, name=name, policy=NodePolicy(validate="none", **kwargs))


async def wait_for(predicate: Any, timeout: float = 1.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.002)


async def test_cancel_in_flight_invocation(event_log: EventLog, msg_factory: Any) -> None:
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    async def slow(message: Any, ctx: Any) -> Any:
        started.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise
        return message

    flow = create(node("slow", slow).to(), middlewares=[event_log])
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await started.wait()
    assert await flow.cancel(message.trace_id) is True
    await wait_for(lambda: bool(event_log.of("trace_cancel_finish")))
    assert saw_cancel.is_set()
    types = event_log.types(message.trace_id)
    assert types.count("trace_cancel_start") == 1 and types.count("trace_cancel_finish") == 1
    assert types.index("trace_cancel_start") < types.index("node_trace_cancelled")
    start = event_log.of("trace_cancel_start")[0]
    assert start.node_name == "OpenSea" and start.trace_cancelled and start.trace_inflight == 1
    assert start.extra["pending"] == 1
    finish = event_log.of("trace_cancel_finish")[0]
    assert finish.node_name == "Rookery" and finish.trace_pending == 0
    assert await flow.cancel(message.trace_id) is False
    # The worker survived the cancellation and still serves other traces.
    flow2_msg = msg_factory(2)
    await flow.emit(flow2_msg)
    await flow.cancel(flow2_msg.trace_id)
    await flow.stop()


async def test_cancel_unknown_trace_is_false_and_requires_running() -> None:
    async def ok(message: Any, ctx: Any) -> Any:
        return message

    flow = create(node("ok", ok).to())
    with pytest.raises(RuntimeError, match="PenguiFlow is not running"):
        await flow.cancel("nope")
    flow.run()
    assert await flow.cancel("nope") is False
    await flow.stop()


async def test_cancel_purges_queued_items_and_spares_other_traces(msg_factory: Any) -> None:
    gate = asyncio.Event()

    async def blocked(message: Any, ctx: Any) -> Any:
        await gate.wait()
        return message

    flow = create(node("blocked", blocked).to(), queue_maxsize=16)
    flow.run()
    victim, survivor = msg_factory("v"), msg_factory("s")
    for m in (victim, survivor, victim, survivor):
        await flow.emit(m)
    await asyncio.sleep(0.01)  # the worker holds the first victim
    assert await flow.cancel(victim.trace_id) is True
    gate.set()
    got = [await flow.fetch(), await flow.fetch()]
    assert [g.payload for g in got] == ["s", "s"]
    await wait_for(lambda: victim.trace_id not in flow._traces.states)
    assert flow._traces.states == {}
    await flow.stop()


async def test_cancel_removes_results_waiting_in_rookery(msg_factory: Any) -> None:
    async def ok(message: Any, ctx: Any) -> Any:
        return message

    flow = create(node("ok", ok).to())
    flow.run()
    done, other = msg_factory("done"), msg_factory("other")
    await flow.emit(done)
    await flow.emit(other)
    await wait_for(lambda: flow._rookery_ctx.queue_depth_in() == 2)
    assert await flow.cancel(done.trace_id) is True
    assert (await flow.fetch()).payload == "other"
    assert flow._traces.states == {}
    await flow.stop()


async def test_items_arriving_after_cancel_are_dropped(
    event_log: EventLog, msg_factory: Any
) -> None:
    release = asyncio.Event()

    async def producer(message: Message, ctx: Any) -> None:
        await ctx.emit(message)
        await release.wait()
        await ctx.emit(message)  # arrives after the cancel

    seen: list[Any] = []

    async def consumer(message: Any, ctx: Any) -> Any:
        seen.append(message)
        return message

    prod = node("producer", producer)
    cons = node("consumer", consumer)
    flow = create(prod.to(cons), middlewares=[event_log])
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await wait_for(lambda: len(seen) == 1)
    # The consumer's result sits in Rookery; the producer is parked in user code.
    await flow.cancel(message.trace_id)
    await wait_for(lambda: bool(event_log.of("trace_cancel_finish")))
    await flow.stop()
    assert "node_trace_cancelled" in event_log.types(message.trace_id)


async def test_cancel_during_backoff_stops_retrying(msg_factory: Any) -> None:
    calls = 0

    async def failing(message: Any, ctx: Any) -> Any:
        nonlocal calls
        calls += 1
        raise ValueError("again")

    log = EventLog()
    flow = create(
        node("failing", failing, max_retries=5, backoff_base=0.05).to(), middlewares=[log]
    )
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await wait_for(lambda: bool(log.of("node_retry")))
    await flow.cancel(message.trace_id)
    await wait_for(lambda: bool(log.of("trace_cancel_finish")))
    await flow.stop()
    assert calls == 1
    assert "node_trace_cancelled" in log.types(message.trace_id)


async def test_self_cancel_discards_result(msg_factory: Any) -> None:
    async def cancels_itself(message: Message, ctx: Any) -> Any:
        await ctx.runtime.cancel(message.trace_id)
        return message

    log = EventLog()
    flow = create(node("self", cancels_itself).to(), middlewares=[log])
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await wait_for(lambda: bool(log.of("trace_cancel_finish")))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(flow.fetch(), 0.05)
    await flow.stop()


async def test_stop_during_invocation_is_not_mistaken_for_trace_cancel(
    msg_factory: Any,
) -> None:
    started = asyncio.Event()

    async def slow(message: Any, ctx: Any) -> Any:
        started.set()
        await asyncio.sleep(5)

    flow = create(node("slow", slow).to())
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await started.wait()
    await flow.cancel(message.trace_id)
    await flow.stop()  # must not hang even though a trace cancel was pending
    assert all(task.done() for task in flow._tasks) and not flow._running


async def test_ensure_trace_event_is_set_on_cancel(msg_factory: Any) -> None:
    started = asyncio.Event()

    async def slow(message: Any, ctx: Any) -> Any:
        started.set()
        await asyncio.sleep(5)

    flow = create(node("slow", slow).to())
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await started.wait()
    event = flow.ensure_trace_event(message.trace_id)
    assert flow._trace_events == {message.trace_id: event}
    assert not event.is_set()
    await flow.cancel(message.trace_id)
    assert event.is_set()
    await flow.stop()


async def test_external_tasks_are_cancelled_at_stop(msg_factory: Any) -> None:
    async def ok(message: Any, ctx: Any) -> Any:
        return message

    flow = create(node("ok", ok).to())
    flow.run()
    task = asyncio.get_running_loop().create_task(asyncio.sleep(5))
    flow.register_external_task("t1", task)
    flow.register_external_task(None, task)  # ignored
    done = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    flow.register_external_task("t2", done)
    await done
    await asyncio.sleep(0)
    assert "t2" not in flow._external_tasks
    await flow.stop()
    assert task.cancelled()


async def test_emit_nowait_queue_full_keeps_pending_count(msg_factory: Any) -> None:
    """Regression: PenguiFlow left the trace counted after QueueFull."""

    async def ok(message: Any, ctx: Any) -> Any:
        return message

    flow = create(node("ok", ok).to(), queue_maxsize=1)
    first, refused = msg_factory(1), msg_factory(2)
    flow.emit_nowait(first)
    with pytest.raises(asyncio.QueueFull):
        flow.emit_nowait(refused)
    assert flow._traces.pending(refused.trace_id) == 0
    assert refused.trace_id not in flow._traces.states
    assert flow._traces.pending(first.trace_id) == 1
    flow.run()
    assert (await flow.fetch()) is first
    assert flow._traces.states == {}
    await flow.stop()


async def test_emit_nowait_rejects_trace_id(msg_factory: Any) -> None:
    flow = create()
    with pytest.raises(RuntimeError, match=r"emit_nowait\(trace_id=\.\.\.\) is not supported"):
        flow.emit_nowait(msg_factory(1), trace_id="t")


async def test_trace_cancelled_text() -> None:
    exc = TraceCancelled("abc")
    assert str(exc) == "trace cancelled: abc" and exc.trace_id == "abc"


async def test_accounting_never_hits_zero_mid_pipeline(msg_factory: Any) -> None:
    observed: list[int] = []
    flow: PenguiFlow

    async def probe(message: Message, ctx: Any) -> Message:
        observed.append(flow._traces.pending(message.trace_id))
        return message

    a, b, c = node("a", probe), node("b", probe), node("c", probe)
    flow = create(a.to(b), b.to(c))
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await flow.fetch()
    await flow.stop()
    assert observed == [1, 1, 1]
