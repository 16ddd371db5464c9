"""The embedded SQLite state store: URLs, persistence across restarts, schema guard."""

from __future__ import annotations

import asyncio
import datetime
import gc
import hashlib
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow.core import create
from penguiflow.errors import ConfigurationError, InvalidTypeError
from penguiflow.node import Node, NodePolicy
from penguiflow.state import RemoteBinding, SchemaVersionError, StoreClosedError
from penguiflow.state.sqlite import SCHEMA_VERSION, SQLiteStateStore
from penguiflow.types import Headers, Message


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the store opens its file when built
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


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _future_file(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    return path


async def test_newer_schema_is_refused_and_the_file_left_unchanged(tmp_path: Path) -> None:
    """Regression: the store switched the file to WAL before reading its version, so a file
    it refused (written by a newer penguiflow) was changed anyway."""
    path = _future_file(tmp_path / "future.db")
    before = _digest(path)
    with pytest.raises(SchemaVersionError, match="newer than this penguiflow") as caught:
        store = SQLiteStateStore(f"sqlite:///{path}")
        await store.load_history("t")  # where it was refused before it was refused at build
    assert isinstance(caught.value, RuntimeError)  # what callers caught before
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["future.db"]  # no -wal, no -shm
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    db.close()


def _open_files(path: Path) -> list[str]:
    """The descriptors of this process open on `path` (Linux's /proc)."""
    folder = Path("/proc/self/fd")
    found = []
    for fd in os.listdir(folder):
        try:
            target = os.readlink(folder / fd)
        except OSError:  # closed while we looked
            continue
        if target == str(path):
            found.append(fd)
    return found


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Garbage collection off: a connection left to the collector stays open."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
async def test_a_refused_file_leaks_no_connection(tmp_path: Path, no_gc: None) -> None:
    """Regression: every call on a refused file opened a connection that stayed open until
    the garbage collector ran (one more per call)."""
    path = tmp_path / "later.db"
    store = SQLiteStateStore(f"sqlite:///{path}")  # a good file when the store is built...
    path.unlink(missing_ok=True)
    _future_file(path)  # ... replaced by a newer penguiflow's before its first use
    for _ in range(3):
        with pytest.raises(SchemaVersionError):
            await store.load_history("t")
    assert _open_files(path) == []
    await store.aclose()


async def test_a_file_that_is_not_a_database_is_refused_at_create(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20)
    before = _digest(path)
    node = Node(passthrough, name="n", policy=NodePolicy(validate="none"))
    with pytest.raises(ConfigurationError, match="is not a usable SQLite database") as caught:
        create(node.to(), state_store=f"sqlite:///{path}")
    assert "left unchanged" in str(caught.value)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("/proc/penguiflow-no-such-dir/flows.db", "cannot create the directory"),
        ("/proc/flows.db", "cannot open the SQLite database"),
        ("{tmp}", "cannot open the SQLite database"),  # a directory, not a file
    ],
)
def test_a_path_that_cannot_hold_a_database_is_refused_at_create(
    tmp_path: Path, where: str, match: str
) -> None:
    """Regression: such a URL was accepted, and every event's save then failed, logged."""
    if where.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    url = "sqlite:///" + where.format(tmp=tmp_path)
    node = Node(passthrough, name="n", policy=NodePolicy(validate="none"))
    with pytest.raises(ConfigurationError, match=match):
        create(node.to(), state_store=url)


def test_a_database_it_cannot_write_is_refused_at_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, which file permissions do not stop: SQLite's own read-only switch
    # gives the same failure a read-only file would.
    real_connect = sqlite3.connect

    def read_only(path: str, **kwargs: Any) -> sqlite3.Connection:
        connection = real_connect(path, **kwargs)
        connection.execute("PRAGMA query_only = ON")
        return connection

    monkeypatch.setattr("penguiflow.state.sqlite.sqlite3.connect", read_only)
    with pytest.raises(ConfigurationError, match=r"is read-only .*the store needs to write"):
        SQLiteStateStore(f"sqlite:///{tmp_path}/ro.db")


def test_url_parts_sqlite_cannot_use_are_refused(tmp_path: Path) -> None:
    """Regression: `?mode=ro` and `user:pw@host` were silently ignored."""
    db = tmp_path / "x.db"
    with pytest.raises(ConfigurationError, match="user, password or host") as caught:
        SQLiteStateStore(f"sqlite://me:s3cret@host/{db}")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="user, password or host"):
        SQLiteStateStore("sqlite://flows.db")  # two slashes: the name is read as a host
    with pytest.raises(ConfigurationError, match=r"mode='ro' is not supported"):
        SQLiteStateStore(f"sqlite:///{db}?mode=ro")
    with pytest.raises(ConfigurationError, match=r"option 'cache' is not supported"):
        SQLiteStateStore(f"sqlite:///{db}?cache=shared")
    with pytest.raises(ConfigurationError, match="fragment"):
        SQLiteStateStore(f"sqlite:///{db}#x")
    with pytest.raises(InvalidTypeError, match="must be a str"):
        SQLiteStateStore(Path(db))  # type: ignore[arg-type]
    assert not db.exists()  # nothing was created for a refused URL


def test_timeout_comes_from_the_url_or_the_option_once(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    assert SQLiteStateStore(f"sqlite:///{db}?timeout=2.5")._timeout == 2.5
    assert SQLiteStateStore(f"sqlite:///{db}", timeout=4)._timeout == 4.0
    assert SQLiteStateStore(f"sqlite:///{db}")._timeout == 30.0
    for bad in ("x", "-1", "nan", "inf", ""):
        with pytest.raises(ConfigurationError, match="finite number of seconds"):
            SQLiteStateStore(f"sqlite:///{db}?timeout={bad}")
    with pytest.raises(ConfigurationError, match="finite number of seconds"):
        SQLiteStateStore(f"sqlite:///{db}", timeout="soon")
    with pytest.raises(ConfigurationError, match="more than once"):
        SQLiteStateStore(f"sqlite:///{db}?timeout=1&timeout=2")
    with pytest.raises(ConfigurationError, match="give it once"):
        SQLiteStateStore(f"sqlite:///{db}?timeout=1", timeout=2)


async def test_state_loads_back_as_saved(tmp_path: Path) -> None:
    store = SQLiteStateStore(f"sqlite:///{tmp_path}/exact.db")
    state = {
        "text": "héllo ☃",
        "numbers": [0, -1, 2**70, 0.1, -2.5e-300, 1e300],
        "flags": [True, False, None],
        "nested": {"a": [{"b": []}, {}]},
    }
    await store.save_planner_state("tok", state)
    loaded = await store.consume_planner_state("tok")
    assert loaded == state and loaded is not None
    assert [type(v) for v in loaded["numbers"]] == [type(v) for v in state["numbers"]]
    await store.save_trajectory("t", state)
    assert await store.get_trajectory("t") == state
    await store.aclose()


@pytest.mark.parametrize(
    ("value", "where", "why"),
    [
        ({"pending": {"args": [1, b"raw"]}}, r"planner_state\['pending'\]\['args'\]\[1\]", "bytes"),
        ({"seen": {1, 2}}, r"planner_state\['seen'\]", "set"),
        ({"at": datetime.datetime(2024, 1, 2)}, r"planner_state\['at'\]", "datetime"),
        ({"pair": (1, 2)}, r"planner_state\['pair'\]", "tuple"),
        ({"by_id": {7: "x"}}, r"planner_state\['by_id'\]", "int key 7"),
        ({"score": float("nan")}, r"planner_state\['score'\]", "not a finite number"),
    ],
)
async def test_values_that_would_not_load_back_are_refused_at_save(
    tmp_path: Path, value: dict[str, Any], where: str, why: str
) -> None:
    """Regression: bytes, sets and datetimes were saved as their str() (and tuples as lists,
    int keys as strings), so a paused run resumed with values of other types."""
    store = SQLiteStateStore(f"sqlite:///{tmp_path}/strict.db")
    with pytest.raises(InvalidTypeError, match=rf"cannot save {where}: it .*{why}"):
        await store.save_planner_state("tok", value)
    assert await store.consume_planner_state("tok") is None  # nothing half-saved
    await store.aclose()


async def test_every_kind_of_state_is_saved_exactly(tmp_path: Path) -> None:
    store = SQLiteStateStore(f"sqlite:///{tmp_path}/kinds.db")
    when = datetime.date(2024, 1, 2)
    attempts = {
        "task": store.save_task("s", {"task_id": "a", "due": when}),
        "task_update": store.save_task_update("s", {"due": when}),
        "steering_event": store.save_steering("s", {"due": when}),
        "trajectory": store.save_trajectory("t", {"due": when}),
        "binding['metadata']": store.save_remote_binding(
            RemoteBinding("t", None, "k", "u", metadata={"due": when})
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises(InvalidTypeError, match=rf"cannot save {re.escape(what)}\['due'\]"):
            await attempt
    # Events are a log, not state: what JSON cannot hold is kept as text, not refused.
    from penguiflow.state import StoredEvent

    await store.save_event(StoredEvent("t", 1.0, "custom", None, None, {"due": when}))
    assert (await store.load_history("t"))[0].payload == {"due": "2024-01-02"}
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
