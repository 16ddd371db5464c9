"""The Redis state store passes the kernel's conformance suite against a real server."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from penguiflow_redis.store import RedisStateStore

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conformance import RedisStoreSuite

from penguiflow.state import StoreClosedError
from penguiflow.testing import run_async


class TestRedisStateStore(RedisStoreSuite):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> None:
        self.url = redis_url


def test_bad_urls_and_prefixes() -> None:
    with pytest.raises(ValueError, match="bad Redis URL"):
        RedisStateStore("http://localhost")
    with pytest.raises(ValueError, match="prefix must be"):
        RedisStateStore("redis://127.0.0.1:6390/0", prefix="a:b")


def test_a_closed_store_refuses_work_instead_of_reconnecting(redis_url: str) -> None:
    """Regression: redis-py reconnects on demand, so a closed store used to keep working
    (and open connections nobody would close)."""

    async def scenario() -> None:
        store = RedisStateStore(redis_url, prefix=f"pftest{uuid.uuid4().hex[:12]}")
        await store.save_memory_state("k", {"x": 1})
        await store.close()  # the old verb is kept as an alias of aclose()
        with pytest.raises(StoreClosedError, match=r"^RedisStateStore at redis://.* is closed"):
            await store.load_memory_state("k")
        with pytest.raises(StoreClosedError):
            await store.list_steering("s", since_id="1")
        await store.aclose()  # idempotent

    run_async(scenario)
