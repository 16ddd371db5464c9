"""Artifacts, written from PenguiFlow 3.11's `penguiflow.artifacts` API: the models, the
in-memory store and its retention limits, the no-op store, the scoped facade tools get,
discovery from a state store, and the adapter over a state store's artifact capability
(round trip across a reopened SQLite database)."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from penguiflow_planner._key_locks import held_keys
from penguiflow_planner.artifacts import (
    ArtifactLimitError,
    ArtifactRef,
    ArtifactRetentionConfig,
    ArtifactScope,
    ArtifactStore,
    InMemoryArtifactStore,
    NoOpArtifactStore,
    ScopedArtifacts,
    StateStoreArtifactStore,
    discover_artifact_store,
    sanitize_artifact_namespace,
)

from penguiflow.errors import InvalidTypeError, PenguiFlowError
from penguiflow.plugins import resolve_driver
from penguiflow.resources import aclose_resource
from penguiflow.state.in_memory import InMemoryStateStore


def scope(session: str = "s1", trace: str | None = "t1", user: str = "ada") -> ArtifactScope:
    return ArtifactScope(tenant_id="acme", user_id=user, session_id=session, trace_id=trace)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# -- models --------------------------------------------------------------------------------------


def test_models_have_penguiflows_fields_and_defaults() -> None:
    assert list(ArtifactScope.model_fields) == ["tenant_id", "user_id", "session_id", "trace_id"]
    assert list(ArtifactRef.model_fields) == [
        "id",
        "mime_type",
        "size_bytes",
        "filename",
        "sha256",
        "scope",
        "namespace",
        "source",
    ]
    retention = ArtifactRetentionConfig()
    assert retention.model_dump() == {
        "ttl_seconds": 3600,
        "max_artifact_bytes": 50 * 1024 * 1024,
        "max_session_bytes": 500 * 1024 * 1024,
        "max_trace_bytes": 100 * 1024 * 1024,
        "max_artifacts_per_trace": 100,
        "max_artifacts_per_session": 1000,
        "cleanup_strategy": "lru",
    }
    assert ArtifactRef(id="x").source == {}
    assert sanitize_artifact_namespace("tool: search/v2") == "tool_search_v2"
    assert sanitize_artifact_namespace("::") is None
    for store in (InMemoryArtifactStore(), NoOpArtifactStore()):
        assert isinstance(store, ArtifactStore)
    assert issubclass(ArtifactLimitError, ValueError)
    assert issubclass(ArtifactLimitError, PenguiFlowError)


# -- the in-memory store -------------------------------------------------------------------------


async def test_in_memory_round_trip_and_ids() -> None:
    store = InMemoryArtifactStore()
    ref = await store.put_bytes(
        b"\x00pdf",
        mime_type="application/pdf",
        filename="a.pdf",
        namespace="tool:fetch",
        scope=scope(),
        meta={"tool": "fetch"},
    )
    assert ref.id.startswith("tool_fetch_") and len(ref.id) == len("tool_fetch_") + 12
    assert ref.sha256 == hashlib.sha256(b"\x00pdf").hexdigest()
    assert (ref.size_bytes, ref.filename, ref.source) == (4, "a.pdf", {"tool": "fetch"})
    assert await store.get(ref.id) == b"\x00pdf"
    assert await store.get_ref(ref.id) == ref
    assert await store.exists(ref.id)
    text = await store.put_text("héllo")
    assert text.mime_type == "text/plain" and text.id.startswith("art_")
    assert await store.get(text.id) == "héllo".encode()
    assert (store.count, store.total_bytes) == (2, 4 + len("héllo".encode()))
    assert await store.delete(ref.id) is True
    assert await store.delete(ref.id) is False
    assert await store.get(ref.id) is None and not await store.exists(ref.id)
    store.clear()
    assert store.count == 0 and store.total_bytes == 0


async def test_same_owner_same_content_is_one_artifact_other_owners_get_their_own() -> None:
    store = InMemoryArtifactStore()
    first = await store.put_text("report", scope=scope())
    again = await store.put_text("report", scope=scope(trace="t2"))
    assert again == first and store.count == 1
    # PenguiFlow digests the content alone, so the second session got the first one's
    # reference and then could not read it: here each owner has its own.
    theirs = await store.put_text("report", scope=scope(session="s2"))
    assert theirs.id != first.id and theirs.scope == scope(session="s2")
    facade = ScopedArtifacts(store, tenant_id="acme", user_id="ada", session_id="s2", trace_id=None)
    assert await facade.download(theirs.id) == b"report"


async def test_list_filters_on_the_fields_given() -> None:
    store = InMemoryArtifactStore()
    a = await store.put_text("a", scope=scope("s1", "t1"))
    b = await store.put_text("b", scope=scope("s1", "t2"))
    c = await store.put_text("c", scope=scope("s2", "t3", user="bob"))
    bare = await store.put_text("d")
    ids = lambda refs: {r.id for r in refs}  # noqa: E731
    assert ids(await store.list()) == {a.id, b.id, c.id, bare.id}
    assert ids(await store.list(scope=ArtifactScope())) == {a.id, b.id, c.id, bare.id}
    assert ids(await store.list(scope=ArtifactScope(session_id="s1"))) == {a.id, b.id}
    assert ids(await store.list(scope=ArtifactScope(trace_id="t2"))) == {b.id}
    assert ids(await store.list(scope=ArtifactScope(tenant_id="acme"))) == {a.id, b.id, c.id}
    assert ids(await store.list(scope=ArtifactScope(user_id="bob", session_id="s1"))) == set()


async def test_ttl_counts_from_storing() -> None:
    clock = Clock()
    store = InMemoryArtifactStore(ArtifactRetentionConfig(ttl_seconds=60), time_source=clock)
    ref = await store.put_text("short-lived", scope=scope())
    clock.now += 59
    assert await store.get(ref.id) == b"short-lived"
    clock.now += 1
    assert await store.get_ref(ref.id) is None and await store.list() == []
    assert store.count == 0
    forever = InMemoryArtifactStore(ArtifactRetentionConfig(ttl_seconds=0), time_source=clock)
    kept = await forever.put_text("kept")
    clock.now += 10**9
    assert await forever.exists(kept.id)


async def test_size_limit_refuses_with_a_clear_error() -> None:
    store = InMemoryArtifactStore(ArtifactRetentionConfig(max_artifact_bytes=4))
    with pytest.raises(ArtifactLimitError, match="max_artifact_bytes=4") as caught:
        await store.put_bytes(b"12345")
    assert "ArtifactRetentionConfig(max_artifact_bytes=...)" in str(caught.value)
    assert store.count == 0


@pytest.mark.parametrize(("strategy", "evicted"), [("lru", "b"), ("fifo", "a")])
async def test_session_count_limit_evicts_by_strategy(strategy: Any, evicted: str) -> None:
    store = InMemoryArtifactStore(
        ArtifactRetentionConfig(max_artifacts_per_session=2, cleanup_strategy=strategy)
    )
    refs = {name: await store.put_text(name, scope=scope(trace=None)) for name in ("a", "b")}
    other = await store.put_text("other session", scope=scope("s2", trace=None))
    await store.get(refs["a"].id)  # "a" is now the most recently used
    c = await store.put_text("c", scope=scope(trace=None))
    assert not await store.exists(refs[evicted].id)
    assert await store.exists(c.id) and await store.exists(other.id)  # s2 untouched
    assert store.count == 3


async def test_byte_and_trace_limits() -> None:
    store = InMemoryArtifactStore(
        ArtifactRetentionConfig(max_session_bytes=10, max_artifacts_per_trace=2)
    )
    first = await store.put_bytes(b"123456", scope=scope(trace="t1"))
    second = await store.put_bytes(b"abcdef", scope=scope(trace="t9"))  # 12 > 10: evicts first
    assert not await store.exists(first.id) and await store.exists(second.id)
    with pytest.raises(ArtifactLimitError, match="max_session_bytes=10"):
        await store.put_bytes(b"x" * 11, scope=scope())
    assert await store.exists(second.id)  # nothing is evicted for a write that cannot fit
    traced = [await store.put_bytes(bytes([n]), scope=scope(f"s{n}", "tr")) for n in range(3)]
    assert [await store.exists(r.id) for r in traced] == [False, True, True]


async def test_cleanup_none_refuses_instead_of_evicting() -> None:
    store = InMemoryArtifactStore(
        ArtifactRetentionConfig(max_artifacts_per_session=1, cleanup_strategy="none")
    )
    kept = await store.put_text("one", scope=scope())
    with pytest.raises(ArtifactLimitError) as caught:
        await store.put_text("two", scope=scope())
    assert "max_artifacts_per_session" in str(caught.value)
    assert "cleanup_strategy='none'" in str(caught.value)
    assert await store.exists(kept.id)
    with pytest.raises(ArtifactLimitError, match="leaves no room"):
        await InMemoryArtifactStore(ArtifactRetentionConfig(max_artifacts_per_session=0)).put_text(
            "x"
        )


async def test_scope_filter_is_the_default_scope() -> None:
    store = InMemoryArtifactStore(scope_filter=scope())
    assert (await store.put_text("x")).scope == scope()
    assert (await store.put_text("y", scope=scope("s2"))).scope == scope("s2")


# -- the no-op store -----------------------------------------------------------------------------


async def test_noop_store_keeps_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    store = NoOpArtifactStore(max_inline_preview=5)
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        text = await store.put_text("abcdefgh", meta={"tool": "x"})
        raw = await store.put_bytes(b"123", mime_type="image/png")
    assert caplog.text.count("no artifact store is configured") == 1
    assert text.source["truncated"] is True and text.source["tool"] == "x"
    assert text.source["preview"].startswith("abcde") and text.source["original_size"] == 8
    assert raw.source["original_size"] == 3 and raw.mime_type == "image/png"
    assert await store.get(text.id) is None and await store.get_ref(text.id) is None
    assert not await store.exists(text.id) and not await store.delete(text.id)
    assert await store.list() == []


# -- the scoped facade ---------------------------------------------------------------------------


async def test_scoped_artifacts_inject_scope_and_check_the_owner() -> None:
    store = InMemoryArtifactStore()
    mine = ScopedArtifacts(store, tenant_id="acme", user_id="ada", session_id="s1", trace_id="t1")
    theirs = ScopedArtifacts(store, tenant_id="acme", user_id="bob", session_id="s1", trace_id="t1")
    anonymous = ScopedArtifacts(store, tenant_id=None, user_id=None, session_id=None, trace_id=None)

    ref = await mine.upload(b"data", filename="d.bin")
    assert ref.scope == scope() and ref.mime_type is None
    assert (await mine.upload("text")).mime_type == "text/plain"
    assert (await mine.upload(bytearray(b"ba"))).size_bytes == 2
    assert await mine.download(ref.id) == b"data"
    assert await mine.get_metadata(ref.id) == ref and await mine.exists(ref.id)

    assert await theirs.download(ref.id) is None
    assert await theirs.get_metadata(ref.id) is None
    assert not await theirs.exists(ref.id)
    assert await theirs.delete(ref.id) is False and await store.exists(ref.id)
    assert await theirs.list() == []
    # A view missing a field does not check it (PenguiFlow's rule), and an artifact stored
    # without a scope is open to every view.
    assert await anonymous.download(ref.id) == b"data"
    unscoped = await store.put_text("public")
    assert await theirs.download(unscoped.id) == b"public"

    later = ScopedArtifacts(store, tenant_id="acme", user_id="ada", session_id="s1", trace_id="t2")
    assert {r.id for r in await later.list()} >= {ref.id}  # every trace of the session
    assert await later.delete(ref.id) is True and not await store.exists(ref.id)


async def test_scoped_artifacts_are_immutable_and_check_types() -> None:
    facade = ScopedArtifacts(
        InMemoryArtifactStore(), tenant_id="a", user_id="b", session_id="c", trace_id=None
    )
    with pytest.raises(AttributeError, match="immutable"):
        facade._scope = ArtifactScope()  # type: ignore[misc]
    facade.scope.session_id = "other"
    assert facade.scope.session_id == "c"
    with pytest.raises(InvalidTypeError, match="bytes or str"):
        await facade.upload({"a": 1})  # type: ignore[arg-type]


# -- discovery -----------------------------------------------------------------------------------


class OwnsOne:
    def __init__(self) -> None:
        self.artifact_store = InMemoryArtifactStore()


class ArtifactsOnly:
    """A store with the artifact capability and nothing else."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put_artifact(self, key: str, data: bytes, *, mime_type: str | None = None) -> str:
        self.blobs[f"ref:{key}"] = data
        return f"ref:{key}"

    async def get_artifact(self, ref: str) -> bytes | None:
        return self.blobs.get(ref)


async def test_discovery_rules(tmp_path: Path) -> None:
    owner = OwnsOne()
    assert discover_artifact_store(owner) is owner.artifact_store
    itself = InMemoryArtifactStore()
    assert discover_artifact_store(itself) is itself
    memory = InMemoryStateStore()
    found = discover_artifact_store(memory)
    assert isinstance(found, InMemoryArtifactStore)
    assert discover_artifact_store(memory) is found  # one per state store
    assert discover_artifact_store(InMemoryStateStore()) is not found
    capable = ArtifactsOnly()
    adapter = discover_artifact_store(capable)
    assert isinstance(adapter, StateStoreArtifactStore) and adapter.state_store is capable
    assert discover_artifact_store(capable) is adapter
    assert discover_artifact_store(object()) is None
    assert discover_artifact_store(None) is None
    sqlite_store = resolve_driver("state_store", f"sqlite:///{tmp_path}/plain.db")
    try:  # the kernel's SQLite store keeps no artifacts (yet): the planner uses a no-op store
        assert discover_artifact_store(sqlite_store) is None
    finally:
        await aclose_resource(sqlite_store)


# -- the adapter over a state store's artifact capability ---------------------------------------


class SQLiteWithArtifacts:
    """A durable store with both capabilities the adapter uses: memory state from the
    kernel's SQLite store, artifact bytes in a table of a second SQLite file (the kernel's
    SQLite store does not offer `put_artifact` yet)."""

    def __init__(self, folder: Path) -> None:
        self.state = resolve_driver("state_store", f"sqlite:///{folder}/state.db")
        self.blobs = sqlite3.connect(folder / "blobs.db")
        self.blobs.execute("CREATE TABLE IF NOT EXISTS blobs (ref TEXT PRIMARY KEY, data BLOB)")

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        await self.state.save_memory_state(key, state)

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self.state.load_memory_state(key)
        return result

    async def put_artifact(self, key: str, data: bytes, *, mime_type: str | None = None) -> str:
        ref = f"blob:{key}"
        with self.blobs:
            self.blobs.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?)", (ref, data))
        return ref

    async def get_artifact(self, ref: str) -> bytes | None:
        row = self.blobs.execute("SELECT data FROM blobs WHERE ref = ?", (ref,)).fetchone()
        return bytes(row[0]) if row else None

    async def aclose(self) -> None:
        await aclose_resource(self.state)
        self.blobs.close()


@pytest.fixture
async def durable(tmp_path: Path) -> AsyncIterator[SQLiteWithArtifacts]:
    store = SQLiteWithArtifacts(tmp_path)
    yield store
    await store.aclose()


async def test_adapter_round_trip_survives_reopening(tmp_path: Path) -> None:
    first = SQLiteWithArtifacts(tmp_path)
    adapter = StateStoreArtifactStore(first)
    pdf = await adapter.put_bytes(
        b"%PDF", mime_type="application/pdf", filename="r.pdf", scope=scope(), meta={"n": 1}
    )
    note = await adapter.put_text("note", scope=scope("s1", "t2"))
    other = await adapter.put_text("bob's", scope=scope("s9", "t3", user="bob"))
    gone = await adapter.put_text("to delete", scope=scope())
    assert await adapter.put_bytes(b"%PDF", scope=scope()) == pdf  # same owner, same content
    assert await adapter.delete(gone.id) is True and await adapter.delete(gone.id) is False
    await first.aclose()

    second = SQLiteWithArtifacts(tmp_path)
    try:
        reopened = StateStoreArtifactStore(second)
        assert await reopened.get(pdf.id) == b"%PDF"
        assert await reopened.get_ref(pdf.id) == pdf
        assert await reopened.exists(note.id) and not await reopened.exists(gone.id)
        assert await reopened.get(gone.id) is None
        ids = lambda refs: {r.id for r in refs}  # noqa: E731
        assert ids(
            await reopened.list(
                scope=ArtifactScope(tenant_id="acme", user_id="ada", session_id="s1")
            )
        ) == {pdf.id, note.id}
        assert ids(await reopened.list(scope=scope("s1", "t2"))) == {note.id}
        assert ids(await reopened.list()) == {pdf.id, note.id, other.id}
        assert ids(await reopened.list(scope=ArtifactScope(user_id="bob"))) == {other.id}
        facade = ScopedArtifacts(
            reopened, tenant_id="acme", user_id="bob", session_id="s9", trace_id=None
        )
        assert await facade.download(pdf.id) is None
        assert await facade.download(other.id) == b"bob's"
    finally:
        await second.aclose()
    assert held_keys() == 0


async def test_adapter_refuses_bytes_that_changed_in_the_store(
    durable: SQLiteWithArtifacts, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = StateStoreArtifactStore(durable)
    ref = await adapter.put_text("original", scope=scope())
    with durable.blobs:
        durable.blobs.execute("UPDATE blobs SET data = ?", (b"tampered",))
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        assert await adapter.get(ref.id) is None
    assert "digest differs" in caplog.text


async def test_adapter_retention_when_given(durable: SQLiteWithArtifacts) -> None:
    clock = Clock()
    adapter = StateStoreArtifactStore(
        durable,
        retention=ArtifactRetentionConfig(ttl_seconds=30, max_artifact_bytes=8),
        time_source=clock,
    )
    ref = await adapter.put_text("brief", scope=scope())
    with pytest.raises(ArtifactLimitError, match="max_artifact_bytes=8"):
        await adapter.put_text("far too long", scope=scope())
    clock.now += 30
    assert await adapter.get(ref.id) is None and await adapter.list() == []


async def test_adapter_without_memory_state_works_in_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        adapter = StateStoreArtifactStore(ArtifactsOnly())
    assert "last only as long as this process" in caplog.text
    ref = await adapter.put_text("x", scope=scope())
    assert await adapter.get(ref.id) == b"x"
    assert [r.id for r in await adapter.list(scope=ArtifactScope(session_id="s1"))] == [ref.id]
    with pytest.raises(InvalidTypeError, match="put_artifact"):
        StateStoreArtifactStore(InMemoryStateStore())
