"""UpdateBroker: filters, bounded queues where critical updates evict and others are dropped
and counted, publishing that never waits on a slow subscriber, and closing that ends
iteration."""

from __future__ import annotations

import asyncio

import pytest
from anyio import wait_all_tasks_blocked
from penguiflow_sessions.broker import CRITICAL_UPDATE_TYPES, UpdateBroker
from penguiflow_sessions.models import StateUpdate, UpdateType

from penguiflow.errors import ConfigurationError, UsageError

U = UpdateType


def update(
    kind: UpdateType = U.PROGRESS, task_id: str = "t", content: object = None
) -> StateUpdate:
    return StateUpdate(session_id="s", task_id=task_id, update_type=kind, content=content)


async def test_filters_by_task_and_update_type() -> None:
    broker = UpdateBroker()
    everything = await broker.subscribe()
    only_a = await broker.subscribe(task_ids=["a"])
    results = await broker.subscribe(update_types=["RESULT", U.ERROR])
    both = await broker.subscribe(task_ids={"b"}, update_types=[U.RESULT])
    sent = [
        update(U.PROGRESS, "a"),
        update(U.RESULT, "a"),
        update(U.RESULT, "b"),
        update(U.ERROR, "c"),
    ]
    assert [broker.publish(u) for u in sent] == [2, 3, 3, 2]
    drained = [
        [s.get_nowait() for _ in range(s.qsize())] for s in (everything, only_a, results, both)
    ]
    assert drained == [sent, sent[:2], sent[1:], [sent[2]]]
    with pytest.raises(ConfigurationError, match=r"unknown update type 'SHOUT'.*PROGRESS"):
        await broker.subscribe(update_types=["SHOUT"])


async def test_a_full_queue_drops_non_critical_updates_and_counts_them() -> None:
    broker = UpdateBroker(max_queue_size=2)
    slow = await broker.subscribe()
    fast = await broker.subscribe()
    for i in range(5):
        broker.publish(update(U.PROGRESS, content=i))
        fast.get_nowait()
    assert [slow.get_nowait().content for _ in range(slow.qsize())] == [0, 1]
    assert (slow.dropped, slow.evicted, fast.dropped) == (3, 0, 0)
    assert (broker.dropped_total, broker.evicted_total, broker.published) == (3, 0, 5)


async def test_critical_updates_evict_the_oldest_non_critical_one_first() -> None:
    assert {U.RESULT, U.ERROR, U.NOTIFICATION, U.STATUS_CHANGE} == CRITICAL_UPDATE_TYPES
    broker = UpdateBroker(max_queue_size=3)
    sub = await broker.subscribe()
    first_status, p1, p2 = update(U.STATUS_CHANGE), update(U.PROGRESS), update(U.THINKING)
    for u in (first_status, p1, p2):
        broker.publish(u)
    result, error, note = update(U.RESULT), update(U.ERROR), update(U.NOTIFICATION)
    for u in (result, error):
        assert broker.publish(u) == 1
    assert [sub.get_nowait() for _ in range(3)] == [first_status, result, error]
    for u in (update(U.STATUS_CHANGE), result, error):
        broker.publish(u)
    broker.publish(note)  # only critical updates queued: the oldest goes
    assert [sub.get_nowait().update_type for _ in range(3)] == [U.RESULT, U.ERROR, U.NOTIFICATION]
    assert (sub.evicted, broker.evicted_total, sub.dropped) == (3, 3, 0)


async def test_publishing_never_waits_for_a_slow_subscriber() -> None:
    broker = UpdateBroker(max_queue_size=10)
    stuck = await broker.subscribe()  # never read
    live = await broker.subscribe(update_types=[U.RESULT])
    received: list[StateUpdate] = []

    async def reader() -> None:
        async for item in live:
            received.append(item)

    task = asyncio.create_task(reader())
    for i in range(1000):  # synchronous: nothing here can wait
        broker.publish(update(U.RESULT if i % 100 == 0 else U.PROGRESS, content=i))
    await wait_all_tasks_blocked()
    assert [u.content for u in received] == list(range(0, 1000, 100))
    # Every update is accounted for: queued, dropped or evicted; and the RESULTs survived.
    assert stuck.qsize() == 10 and stuck.qsize() + stuck.dropped + stuck.evicted == 1000
    assert [stuck.get_nowait().content for _ in range(10)] == list(range(0, 1000, 100))
    await broker.aclose()
    await task


async def test_closing_the_broker_ends_iteration_after_queued_updates() -> None:
    broker = UpdateBroker()
    sub = await broker.subscribe()
    waiting = await broker.subscribe()
    got: list[StateUpdate] = []

    async def read() -> None:
        async for item in waiting:
            got.append(item)

    reader = asyncio.create_task(read())
    await wait_all_tasks_blocked()
    last = update(U.RESULT)
    broker.publish(last)
    async with broker:
        pass  # `async with` closes it
    await reader
    assert got == [last]
    assert [item async for item in sub] == [last]
    assert sub.closed and broker.closed and broker.subscriber_count == 0
    with pytest.raises(UsageError, match="closed"):
        broker.publish(update())
    with pytest.raises(UsageError, match="closed"):
        await broker.subscribe()
    with pytest.raises(UsageError, match="subscribe again"):
        await sub.get()
    await broker.aclose()  # idempotent


async def test_closing_a_subscription_unsubscribes_and_ends_its_iterator() -> None:
    broker = UpdateBroker()
    sub = await broker.subscribe()
    broker.publish(update())

    async def read() -> list[StateUpdate]:
        return [item async for item in sub]

    reader = asyncio.create_task(read())
    await wait_all_tasks_blocked()
    await sub.aclose()
    assert len(await reader) == 1  # what it read before the close; then iteration ended
    assert broker.subscriber_count == 0 and broker.publish(update()) == 0
    await sub.aclose()  # idempotent


async def test_penguiflows_queue_and_unsubscribe_form() -> None:
    broker = UpdateBroker(max_queue_size=5)
    queue, unsubscribe = await broker.subscribe(task_ids=["t"])
    sent = update(U.RESULT)
    broker.publish(sent)
    assert not queue.empty() and await queue.get() is sent
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    await unsubscribe()
    assert broker.subscriber_count == 0


def test_bad_queue_sizes_are_refused() -> None:
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ConfigurationError, match="max_queue_size"):
            UpdateBroker(max_queue_size=bad)  # type: ignore[arg-type]
    assert UpdateBroker().max_queue_size == 0
