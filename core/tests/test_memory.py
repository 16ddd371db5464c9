"""Memory strategies: truncation budgets, overflow policies, persistence through a store, and
storage keys that never let two (tenant, user, session) triples share memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow.memory import (
    ConversationTurn,
    MemoryBudgetExceeded,
    MemoryKey,
    MemorySnapshot,
    NoMemory,
    TruncationMemory,
    estimate_tokens,
    read_memory_state,
    write_memory_state,
)
from penguiflow.state.in_memory import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore
from penguiflow.testing import run_async

KEY = MemoryKey(tenant_id="t", user_id="u", session_id="s")


def turn(i: int, size: int = 4) -> ConversationTurn:
    return ConversationTurn(user=f"q{i}".ljust(size, "."), assistant=f"a{i}".ljust(size, "."))


def test_key_parts_are_required() -> None:
    with pytest.raises(ValueError):
        MemoryKey(tenant_id="t", user_id="", session_id="s")
    assert KEY.as_string() == "v2:t:u:s"


async def test_keeps_the_last_turns() -> None:
    memory = TruncationMemory(max_turns=2)
    for i in range(4):
        await memory.add_turn(KEY, turn(i))
    assert [t.user for t in (await memory.snapshot(KEY)).turns] == ["q2..", "q3.."]


async def test_token_budget_policies() -> None:
    per_turn = estimate_tokens("q0" * 10) * 2  # user + assistant of a 20-char turn
    oldest = TruncationMemory(max_tokens=per_turn * 2)
    for i in range(4):
        await oldest.add_turn(KEY, turn(i, size=20))
    assert len((await oldest.snapshot(KEY)).turns) == 2
    strict = TruncationMemory(max_tokens=per_turn, overflow="error")
    await strict.add_turn(KEY, turn(0, size=20))
    with pytest.raises(MemoryBudgetExceeded, match="over max_tokens"):
        await strict.add_turn(KEY, turn(1, size=20))
    assert len((await strict.snapshot(KEY)).turns) == 1  # the refused turn was not stored


async def test_memory_persists_through_the_state_store() -> None:
    store = InMemoryStateStore()
    await TruncationMemory(state_store=store).add_turn(KEY, turn(1))
    reopened = TruncationMemory(state_store=store)  # e.g. a new process
    assert [t.user for t in (await reopened.snapshot(KEY)).turns] == ["q1.."]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="max_turns must be >= 1"):
        TruncationMemory(max_turns=0)
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        TruncationMemory(max_tokens=0)
    with pytest.raises(ValueError, match="overflow must be"):
        TruncationMemory(overflow="drop")  # type: ignore[arg-type]

    class EventsOnly:
        async def save_event(self, event: object) -> None: ...

    with pytest.raises(TypeError, match="required for feature=memory persistence"):
        TruncationMemory(state_store=EventsOnly())


def test_snapshot_messages() -> None:
    snapshot = MemorySnapshot(summary="earlier chat", turns=[turn(1)])
    assert [(m.role, m.content) for m in snapshot.to_messages()] == [
        ("system", "Conversation so far: earlier chat"),
        ("user", "q1.."),
        ("assistant", "a1.."),
    ]


# -- storage keys: distinct triples never share memory ----------------------------------------

#: parts rich in the characters a naive encoding gets wrong: separators and escape sequences
PART = st.text(alphabet=st.sampled_from(["a", "b", "/", ":", "%", "2", "F", "3", "A", "é"]),
               min_size=1, max_size=8)  # fmt: skip
TRIPLE = st.tuples(PART, PART, PART)


def key(parts: tuple[str, str, str]) -> MemoryKey:
    return MemoryKey(tenant_id=parts[0], user_id=parts[1], session_id=parts[2])


def legacy_twins() -> st.SearchStrategy[tuple[MemoryKey, MemoryKey]]:
    """Two different keys whose 4.0.0 strings (`tenant/user/session`) were the same."""

    def build(segments: list[str]) -> tuple[MemoryKey, MemoryKey]:
        a, b, c, d = segments
        return key((f"{a}/{b}", c, d)), key((a, f"{b}/{c}", d))

    return st.lists(PART, min_size=4, max_size=4).map(build)


@asynccontextmanager
async def no_store() -> AsyncIterator[None]:
    yield None


@asynccontextmanager
async def in_memory_store() -> AsyncIterator[InMemoryStateStore]:
    async with InMemoryStateStore() as store:
        yield store


@asynccontextmanager
async def sqlite_store() -> AsyncIterator[SQLiteStateStore]:
    async with SQLiteStateStore("sqlite:///:memory:") as store:
        yield store


STORES: dict[str, Callable[[], Any]] = {
    "no store": no_store,
    "in-memory store": in_memory_store,
    "sqlite store": sqlite_store,
}


async def shares_memory(first: MemoryKey, second: MemoryKey, make_store: Any) -> bool:
    """Whether `second` sees a turn `first` added, through a fresh store and strategy (and a
    second strategy on the same store: a new process reads what the first one saved)."""
    async with make_store() as store:
        writer = TruncationMemory(state_store=store)
        await writer.add_turn(first, ConversationTurn(user="secret", assistant="noted"))
        seen = [await writer.snapshot(second)]
        if store is not None:
            seen.append(await TruncationMemory(state_store=store).snapshot(second))
        return any(snapshot.turns for snapshot in seen)


def test_the_storage_string_is_injective_and_never_an_old_format_string() -> None:
    @settings(max_examples=300, deadline=None)
    @given(first=TRIPLE, second=TRIPLE)
    def check(first: tuple[str, str, str], second: tuple[str, str, str]) -> None:
        if first != second:
            assert key(first).as_string() != key(second).as_string()
        # Every 4.0.0 string holds two `/` at least; a new one holds none, so a new key can
        # never read an old entry that another key wrote.
        assert "/" not in key(first).as_string()

    check()


@pytest.mark.parametrize("store", sorted(STORES))
def test_the_issue_example_keys_do_not_share_memory(store: str) -> None:
    # Regression: both keys were stored as "acme/eu/alice/s1" and read each other's turns.
    eu_tenant = MemoryKey(tenant_id="acme/eu", user_id="alice", session_id="s1")
    eu_user = MemoryKey(tenant_id="acme", user_id="eu/alice", session_id="s1")
    assert not run_async(lambda: shares_memory(eu_tenant, eu_user, STORES[store]))
    assert not run_async(lambda: shares_memory(eu_user, eu_tenant, STORES[store]))


@pytest.mark.parametrize("store", sorted(STORES))
def test_distinct_triples_never_share_memory(store: str) -> None:
    @settings(max_examples=40, deadline=None)
    @given(pair=st.one_of(legacy_twins(), st.tuples(TRIPLE.map(key), TRIPLE.map(key))))
    def check(pair: tuple[MemoryKey, MemoryKey]) -> None:
        first, second = pair
        if first != second:
            assert not run_async(lambda: shares_memory(first, second, STORES[store]))

    check()


async def test_no_memory_never_remembers_any_key() -> None:
    memory = NoMemory()
    first, second = key(("acme/eu", "alice", "s1")), key(("acme", "eu/alice", "s1"))
    await memory.add_turn(first, ConversationTurn(user="secret", assistant="noted"))
    assert (await memory.snapshot(second)).turns == [] == (await memory.snapshot(first)).turns


# -- migration from 4.0.0's `tenant/user/session` strings -------------------------------------


async def test_state_saved_under_an_unambiguous_old_string_is_still_read() -> None:
    store = InMemoryStateStore()
    await store.save_memory_state("acme/alice/s1", {"turns": [turn(1).model_dump()]})
    alice = key(("acme", "alice", "s1"))
    assert alice.legacy_string() == "acme/alice/s1"
    memory = TruncationMemory(state_store=store)
    assert [t.user for t in (await memory.snapshot(alice)).turns] == ["q1.."]
    await memory.add_turn(alice, turn(2))  # written in the new format, history included
    saved = await store.load_memory_state(alice.as_string())
    assert saved is not None and [t["user"] for t in saved["turns"]] == ["q1..", "q2.."]
    await memory.clear(alice)  # the cleared state shadows the old entry from now on
    reopened = TruncationMemory(state_store=store)
    assert (await reopened.snapshot(alice)).turns == []
    assert await store.load_memory_state("acme/alice/s1") is not None  # left, but unread


async def test_an_ambiguous_old_string_is_never_read() -> None:
    store = InMemoryStateStore()
    await store.save_memory_state("acme/eu/alice/s1", {"turns": [turn(1).model_dump()]})
    for parts in (("acme/eu", "alice", "s1"), ("acme", "eu/alice", "s1")):
        assert key(parts).legacy_string() is None
        assert await read_memory_state(store, key(parts)) is None
        assert (await TruncationMemory(state_store=store).snapshot(key(parts))).turns == []


async def test_read_and_write_use_the_new_string_first() -> None:
    store = InMemoryStateStore()
    alice = key(("acme", "alice", "s1"))
    await store.save_memory_state("acme/alice/s1", {"turns": ["old"]})
    await write_memory_state(store, alice, {"turns": ["new"]})
    assert await store.load_memory_state("v2:acme:alice:s1") == {"turns": ["new"]}
    assert await read_memory_state(store, alice) == {"turns": ["new"]}
