"""The state store and the message bus through Redis Sentinel (a real primary, replica and
three Sentinels started by scripts/services/redis-sentinel.sh): the conformance suites, and a
primary killed while a store is written in a loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from conformance import RedisBusSuite, RedisStoreSuite
from conftest import ServiceSet
from penguiflow_redis.store import RedisStateStore
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from penguiflow.testing import run_async

# What a write may raise while the primary is gone and until the Sentinels promote the
# replica (refused connections, timeouts, or a write reaching a server that is a replica).
FAILOVER_ERRORS = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


class TestRedisStateStoreThroughSentinel(RedisStoreSuite):
    @pytest.fixture(autouse=True)
    def _server(self, redis_sentinel: ServiceSet) -> None:
        self.url = redis_sentinel.url


class TestRedisMessageBusThroughSentinel(RedisBusSuite):
    @pytest.fixture(autouse=True)
    def _server(self, redis_sentinel: ServiceSet) -> None:
        self.url = redis_sentinel.url


def test_a_killed_primary_fails_over_and_the_store_keeps_working(
    redis_sentinel: ServiceSet,
) -> None:
    """One store object is written in a loop while the primary is SIGKILLed. The Sentinels
    promote the replica and the same store goes on writing to it, with no new client.

    Replication is asynchronous, so what was acknowledged shortly before the kill may be lost;
    everything acknowledged before a `WAIT 1` (the replica confirmed it) and everything
    acknowledged after the failover must be there."""
    prefix = f"pftest{uuid.uuid4().hex[:12]}"

    async def scenario() -> tuple[int, int, int]:
        async with RedisStateStore(redis_sentinel.url, prefix=prefix) as store:
            client: Any = store._client
            acked: list[int] = []
            n = 0

            async def write(deadline: float) -> None:
                nonlocal n
                while True:
                    try:
                        await store.save_memory_state(f"k{n}", {"n": n})
                    except FAILOVER_ERRORS:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.05)  # pace the retries, not a synchronisation
                        continue
                    acked.append(n)
                    n += 1
                    return

            for _ in range(50):
                await write(time.monotonic() + 5)
            assert await client.execute_command("WAIT", 1, 5000) == 1
            confirmed = len(acked)  # on the replica too
            killer = asyncio.ensure_future(asyncio.to_thread(redis_sentinel.run, "kill-primary"))
            while not killer.done():
                await write(time.monotonic() + 60)
            await killer  # raises if the failover did not happen
            after_failover = len(acked)
            for _ in range(50):
                await write(time.monotonic() + 60)
            found = []
            for k in acked:
                if await store.load_memory_state(f"k{k}") == {"n": k}:
                    found.append(k)
            missing = sorted(set(acked) - set(found))
            assert not [k for k in missing if k < confirmed], missing
            assert not [k for k in missing if k >= after_failover], missing
            return confirmed, after_failover - confirmed, len(missing)

    confirmed, during, lost = run_async(scenario, timeout=180)
    # Only writes acknowledged between the last replica confirmation and the kill can be lost.
    assert lost <= during, (confirmed, during, lost)
