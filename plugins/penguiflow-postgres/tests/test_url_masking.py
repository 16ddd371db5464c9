"""Passwords in PostgreSQL URLs never reach a message or a repr; schemes are accepted in any
case (`POSTGRESQL://` and `Postgres://` are routed here by the kernel)."""

from __future__ import annotations

import uuid

import pytest
from penguiflow_postgres.store import PostgresStateStore

from penguiflow.errors import ConfigurationError
from penguiflow.plugins import resolve_driver
from penguiflow.testing import run_async

SECRET = "s3cret-Pa55"


def test_repr_hides_the_password() -> None:
    store = PostgresStateStore(f"postgresql://app:{SECRET}@db.internal:5432/flows")
    assert repr(store) == (
        "PostgresStateStore('postgresql://app:***@db.internal:5432/flows', schema='penguiflow')"
    )


def test_a_refused_url_is_shown_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        PostgresStateStore(f"mysql://app:{SECRET}@db/flows")
    assert SECRET not in str(info.value) and "mysql://app:***@db/flows" in str(info.value)


@pytest.mark.parametrize("scheme", ["POSTGRESQL", "Postgres", "PostgreSQL", "postgres"])
def test_mixed_case_schemes_are_accepted(scheme: str) -> None:
    """Regression: the kernel routed `POSTGRESQL://` here, and the plugin refused it with the
    whole URL (password included) in the message."""
    store = resolve_driver("state_store", f"{scheme}://app:{SECRET}@db/flows")
    assert isinstance(store, PostgresStateStore)
    assert store.url == f"{scheme.lower()}://app:{SECRET}@db/flows"


def test_an_uppercase_url_reaches_the_server(postgres_url: str) -> None:
    scheme, rest = postgres_url.split("://", 1)
    schema = f"pftest_{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        import asyncpg

        store = resolve_driver("state_store", f"{scheme.upper()}://{rest}", schema=schema)
        async with store:
            await store.save_memory_state("k", {"x": 1})
            assert await store.load_memory_state("k") == {"x": 1}
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()

    run_async(scenario)
