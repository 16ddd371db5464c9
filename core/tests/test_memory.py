"""Memory strategies: truncation budgets, overflow policies, persistence through a store."""

from __future__ import annotations

import pytest

from penguiflow.memory import (
    ConversationTurn,
    MemoryBudgetExceeded,
    MemoryKey,
    MemorySnapshot,
    TruncationMemory,
    estimate_tokens,
)
from penguiflow.state.in_memory import InMemoryStateStore

KEY = MemoryKey(tenant_id="t", user_id="u", session_id="s")


def turn(i: int, size: int = 4) -> ConversationTurn:
    return ConversationTurn(user=f"q{i}".ljust(size, "."), assistant=f"a{i}".ljust(size, "."))


def test_key_parts_are_required() -> None:
    with pytest.raises(ValueError):
        MemoryKey(tenant_id="t", user_id="", session_id="s")
    assert KEY.as_string() == "t/u/s"


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
