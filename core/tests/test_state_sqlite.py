"""The embedded SQLite state store: URLs, persistence across restarts, schema guard."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from penguiflow.core import create
from penguiflow.node import Node, NodePolicy
from penguiflow.state import StoreClosedError
from penguiflow.state.sqlite import SCHEMA_VERSION, SQLiteStateStore
from penguiflow.types import Headers, Message


def test_url_forms(tmp_path: Path) -> None:
    assert SQLiteStateStore("sqlite:///flows.db").path == "flows.db"
    assert SQLiteStateStore(f"sqlite:///{tmp_path}/x.db").path == f"{tmp_path}/x.db"
    assert SQLiteStateStore("sqlite:///:memory:").path == ":memory:"
    for bad in ("sqlite://", "postgres:///x.db", "sqlite:///"):
        with pytest.raises(ValueError, match="bad SQLite URL"):
            SQLiteStateStore(bad)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['pool'\]"):
        SQLiteStateStore("sqlite:///:memory:", pool=3)


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


async def test_history_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/flows.db"
    node = Node(passthrough, name="n", policy=NodePolicy(validate="none"))
    flow = create(node.to(), state_store=url)
    flow.run()
    message = Message(payload=1, headers=Headers(tenant="t"))
    await flow.emit(message)
    await flow.fetch()
    await flow.stop()
    await flow._state_store.aclose()  # type: ignore[union-attr]
    # A new flow (as after a process restart) on the same file sees the earlier events.
    later = create(node.to(), state_store=url)
    kinds = [e.kind for e in await later.load_history(message.trace_id)]
    assert kinds[:2] == ["node_start", "node_success"]
    await later._state_store.aclose()  # type: ignore[union-attr]


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SQLiteStateStore(f"sqlite:///{path}")
    with pytest.raises(RuntimeError, match="newer than this penguiflow"):
        await store.load_history("t")
    await store.aclose()


async def test_closed_store_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    async with SQLiteStateStore(url) as store:
        await store.load_history("t")
    await store.aclose()  # idempotent
    with pytest.raises(StoreClosedError, match=rf"^SQLiteStateStore at {url} is closed"):
        await store.load_history("t")
    assert isinstance(StoreClosedError(store), RuntimeError)  # what callers caught before


async def test_close_is_kept_as_an_alias_of_aclose(tmp_path: Path) -> None:
    store = SQLiteStateStore(f"sqlite:///{tmp_path}/alias.db")
    await store.load_history("t")
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.save_memory_state("k", {})
    await store.close()  # idempotent too


async def test_a_call_racing_aclose_is_refused_instead_of_reconnecting(tmp_path: Path) -> None:
    """Regression: a call made while aclose() waited for the database thread ran after the
    connection was closed, opened a new one and leaked it (and succeeded on a closed store)."""
    store = SQLiteStateStore(f"sqlite:///{tmp_path}/race.db")
    await store.load_history("t")
    # Tasks start in creation order: aclose() is waiting on the database thread when the
    # read begins.
    closing = asyncio.create_task(store.aclose())
    reading = asyncio.create_task(store.load_history("t"))
    closed, read = await asyncio.gather(closing, reading, return_exceptions=True)
    assert closed is None
    assert isinstance(read, StoreClosedError)
    assert store._connection is None


async def test_bindings_and_memory(tmp_path: Path) -> None:
    from penguiflow.state import RemoteBinding

    store = SQLiteStateStore(f"sqlite:///{tmp_path}/b.db")
    await store.save_remote_binding(RemoteBinding("t", "c1", "k1", "u"))
    await store.save_remote_binding(RemoteBinding("t", "c2", "k2", "u"))
    assert (await store.find_binding(trace_id="t")).task_id == "k2"  # type: ignore[union-attr]
    assert (await store.find_binding(context_id="c1")).task_id == "k1"  # type: ignore[union-attr]
    await store.mark_binding_terminal(trace_id="t", task_id="k1")
    assert [b.is_terminal for b in await store.list_bindings("t")] == [True, False]
    await store.save_memory_state("a/b/c", {"turns": [1]})
    assert await store.load_memory_state("a/b/c") == {"turns": [1]}
    assert await store.load_memory_state("missing") is None
    with pytest.raises(ValueError, match="needs trace_id or context_id"):
        await store.find_binding()
    await store.aclose()


async def test_version_1_files_are_migrated(tmp_path: Path) -> None:
    """A file written by schema 1 (events only) opens, keeps its data, and gains the rest."""
    from penguiflow.state import StoredEvent
    from penguiflow.state.sqlite import _MIGRATIONS

    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(_MIGRATIONS[1])
        db.execute("PRAGMA user_version = 1")
    store = SQLiteStateStore(f"sqlite:///{path}")
    await store.save_event(StoredEvent("t", 1.0, "node_start", "n", "id", {}))
    await store.save_planner_state("tok", {"a": 1})
    assert await store.consume_planner_state("tok") == {"a": 1}
    assert len(await store.load_history("t")) == 1
    await store.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
