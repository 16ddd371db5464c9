"""The PostgreSQL state store passes the kernel's conformance suite against a real server."""

from __future__ import annotations

import asyncio
import datetime
import re
import uuid

import pytest
from penguiflow_postgres.store import SCHEMA_VERSION, PostgresStateStore

from penguiflow.errors import InvalidTypeError
from penguiflow.plugins import resolve_driver
from penguiflow.state import RemoteBinding, StateStore, StoreClosedError
from penguiflow.testing import StateStoreConformance, run_async

ALL = frozenset(
    {
        "planner_state",
        "memory_state",
        "tasks",
        "steering",
        "trajectories",
        "conversation_bindings",
        "audit",
    }
)


async def drop(store: PostgresStateStore) -> None:
    import asyncpg

    conn = await asyncpg.connect(store.url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {store.schema} CASCADE")
    finally:
        await conn.close()


class TestPostgresStateStore(StateStoreConformance):
    required_capabilities = ALL

    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str) -> None:
        self.url = postgres_url

    async def make_store(self) -> StateStore:
        # A fresh schema per test: an empty store, created by the store's own migration.
        store: StateStore = resolve_driver(
            "state_store", self.url, schema=f"pftest_{uuid.uuid4().hex[:12]}"
        )
        return store

    async def reopen_store(self, store: StateStore) -> StateStore:
        assert isinstance(store, PostgresStateStore)
        return PostgresStateStore(store.url, schema=store.schema)

    async def close_store(self, store: StateStore) -> None:
        assert isinstance(store, PostgresStateStore)
        await store.aclose()
        await drop(store)


def test_concurrent_first_use_migrates_once(postgres_url: str) -> None:
    schema = f"pftest_{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        stores = [PostgresStateStore(postgres_url, schema=schema) for _ in range(4)]
        await asyncio.gather(*(s.load_history("t") for s in stores))
        import asyncpg

        conn = await asyncpg.connect(postgres_url)
        versions = await conn.fetch(f"SELECT version FROM {schema}.schema_version")
        await conn.close()
        assert [r["version"] for r in versions] == list(range(1, SCHEMA_VERSION + 1))
        for store in stores:
            await store.aclose()
        await drop(stores[0])

    run_async(scenario)


def test_newer_schema_is_refused(postgres_url: str) -> None:
    schema = f"pftest_{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        import asyncpg

        conn = await asyncpg.connect(postgres_url)
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.schema_version (version INT NOT NULL)")
        await conn.execute(f"INSERT INTO {schema}.schema_version VALUES ({SCHEMA_VERSION + 1})")
        await conn.close()
        store = PostgresStateStore(postgres_url, schema=schema)
        with pytest.raises(RuntimeError, match="upgrade penguiflow-postgres"):
            await store.load_history("t")
        await store.aclose()
        await drop(store)

    run_async(scenario)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="bad PostgreSQL URL"):
        PostgresStateStore("mysql://x")
    with pytest.raises(ValueError, match="schema must be a lowercase SQL identifier"):
        PostgresStateStore("postgresql://x/y", schema="Robert'); DROP TABLE")


def test_a_closed_store_refuses_work_instead_of_reopening(postgres_url: str) -> None:
    """Regression: the pool opens on first use, so a closed store used to open a new pool
    on its next call and keep working (with connections nobody would close)."""
    schema = f"pftest_{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        store = PostgresStateStore(postgres_url, schema=schema)
        await store.save_memory_state("k", {"x": 1})
        await store.close()  # the old verb is kept as an alias of aclose()
        with pytest.raises(StoreClosedError, match=r"^PostgresStateStore at postgresql://"):
            await store.load_memory_state("k")
        assert store._pool is None
        await store.aclose()  # idempotent
        await drop(store)

    run_async(scenario)


def test_aclose_during_first_use_keeps_no_pool(postgres_url: str) -> None:
    """Regression: aclose() while the first call was still opening the pool saw no pool,
    returned, and the pool opened afterwards stayed open for good."""
    schema = f"pftest_{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        store = PostgresStateStore(postgres_url, schema=schema)
        # Tasks start in creation order: the read is opening the pool when aclose() begins.
        reading = asyncio.create_task(store.load_history("t"))
        closing = asyncio.create_task(store.aclose())
        read, closed = await asyncio.gather(reading, closing, return_exceptions=True)
        assert closed is None
        assert isinstance(read, StoreClosedError)
        assert store._pool is None
        await drop(store)

    run_async(scenario)


def test_the_error_names_the_store_without_its_password() -> None:
    store = PostgresStateStore("postgresql://app:s3cret@db.internal/flows")
    run_async(store.aclose)
    error = StoreClosedError(store)
    assert error.store_name == "PostgresStateStore at postgresql://app:***@db.internal/flows"


def test_state_that_would_not_load_back_is_refused_at_save(postgres_url: str) -> None:
    """Regression: bytes, sets, datetimes (and tuples, int keys) were saved as text or
    lists, so a paused run resumed with values of other types than it saved."""
    schema = f"pftest_{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        store = PostgresStateStore(postgres_url, schema=schema)
        when = datetime.datetime(2024, 1, 2)
        attempts = {
            "planner_state['at']": store.save_planner_state("tok", {"at": when}),
            "memory_state['raw']": store.save_memory_state("k", {"raw": b"x"}),
            "task['tags']": store.save_task("s", {"task_id": "a", "tags": {"x"}}),
            "task_update['pair']": store.save_task_update("s", {"pair": (1, 2)}),
            "steering_event": store.save_steering("s", {1: "x"}),  # type: ignore[dict-item]
            "trajectory['steps'][0]": store.save_trajectory("t", {"steps": [when]}),
            "binding['metadata']['at']": store.save_remote_binding(
                RemoteBinding("t", None, "k", "u", metadata={"at": when})
            ),
        }
        for where, attempt in attempts.items():
            prefix = f"the postgresql state store cannot save {where}: it "
            with pytest.raises(InvalidTypeError, match=f"^{re.escape(prefix)}"):
                await attempt
        assert await store.consume_planner_state("tok") is None  # nothing half-saved
        state = {"n": [1, 2.5, None, True], "s": "héllo ☃", "d": {"e": []}}
        await store.save_planner_state("tok", state)
        assert await store.consume_planner_state("tok") == state
        await store.aclose()
        await drop(store)

    run_async(scenario)
