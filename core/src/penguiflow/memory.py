"""Short-term memory strategies: what a conversation remembers between turns.

Memory is keyed by (tenant, user, session); with no key there is no memory at all (fail
closed), so one user's turns can never leak into another's prompt. Strategies are drivers of
the `penguiflow.memory_strategies` group; `none` and `truncation` are built in, and the
planner plugin adds `rolling_summary`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigurationError, PenguiFlowError
from .llm import LLMMessage
from .resources import AsyncResource
from .state import require_capabilities

__all__ = [
    "ConversationTurn",
    "MemoryBudgetExceeded",
    "MemoryKey",
    "MemorySnapshot",
    "MemoryStrategy",
    "NoMemory",
    "TruncationMemory",
    "estimate_tokens",
]

MemoryHealth = Literal["healthy", "retry", "degraded"]
OverflowPolicy = Literal["truncate_oldest", "error"]


class MemoryBudgetExceeded(PenguiFlowError, RuntimeError):
    """A turn does not fit the memory's token budget and the policy is `error`."""


class MemoryKey(BaseModel):
    """Whose memory: every part is required, so a partial key cannot share memory."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    session_id: str = Field(min_length=1)

    def as_string(self) -> str:
        return f"{self.tenant_id}/{self.user_id}/{self.session_id}"


class ConversationTurn(BaseModel):
    user: str
    assistant: str
    ts: float = Field(default_factory=time.time)
    metadata: dict[str, Any] = Field(default_factory=dict)


class MemorySnapshot(BaseModel):
    """What a strategy gives the next prompt: an optional summary and recent turns."""

    summary: str | None = None
    turns: list[ConversationTurn] = Field(default_factory=list)
    health: MemoryHealth = "healthy"

    def to_messages(self) -> list[LLMMessage]:
        messages: list[LLMMessage] = []
        if self.summary:
            messages.append(
                LLMMessage(role="system", content=f"Conversation so far: {self.summary}")
            )
        for turn in self.turns:
            messages.append(LLMMessage(role="user", content=turn.user))
            messages.append(LLMMessage(role="assistant", content=turn.assistant))
        return messages


@runtime_checkable
class MemoryStrategy(Protocol):
    """Remember turns per key; `key=None` means no memory (writes ignored, reads empty)."""

    async def add_turn(self, key: MemoryKey | None, turn: ConversationTurn) -> None: ...

    async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot: ...

    async def clear(self, key: MemoryKey | None) -> None: ...


def estimate_tokens(text: str) -> int:
    """A provider-neutral estimate (about four characters per token)."""
    return (len(text) + 3) // 4


class NoMemory(AsyncResource):
    """`none`: remembers nothing."""

    async def add_turn(self, key: MemoryKey | None, turn: ConversationTurn) -> None:
        return None

    async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot:
        return MemorySnapshot()

    async def clear(self, key: MemoryKey | None) -> None:
        return None

    async def aclose(self) -> None:
        """Nothing to release; here so every resource closes the same way (`async with`)."""


class TruncationMemory(AsyncResource):
    """`truncation`: the last `max_turns` turns, within `max_tokens` when set.

    When a new turn overflows the token budget, `overflow="truncate_oldest"` drops the oldest
    turns and `overflow="error"` raises `MemoryBudgetExceeded` (the turn is not stored). With
    a `state_store` that supports memory state, every key's turns persist across processes.
    """

    def __init__(
        self,
        *,
        max_turns: int = 20,
        max_tokens: int | None = None,
        overflow: OverflowPolicy = "truncate_oldest",
        state_store: Any = None,
    ) -> None:
        if max_turns < 1:
            raise ConfigurationError(f"max_turns must be >= 1 (got {max_turns})")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be >= 1 or None (got {max_tokens})")
        if overflow not in ("truncate_oldest", "error"):
            raise ConfigurationError(
                f"overflow must be 'truncate_oldest' or 'error' (got {overflow!r})"
            )
        if state_store is not None:
            require_capabilities(
                state_store,
                feature="memory persistence",
                methods=["save_memory_state", "load_memory_state"],
            )
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.overflow = overflow
        self._store = state_store
        self._turns: dict[str, list[ConversationTurn]] = {}
        self._lock = asyncio.Lock()

    async def _load(self, name: str) -> list[ConversationTurn]:
        turns = self._turns.get(name)
        if turns is None:
            turns = []
            if self._store is not None:
                saved = await self._store.load_memory_state(name)
                if saved:
                    turns = [ConversationTurn.model_validate(t) for t in saved.get("turns", [])]
            self._turns[name] = turns
        return turns

    def _tokens(self, turns: list[ConversationTurn]) -> int:
        return sum(estimate_tokens(t.user) + estimate_tokens(t.assistant) for t in turns)

    async def add_turn(self, key: MemoryKey | None, turn: ConversationTurn) -> None:
        if key is None:
            return
        name = key.as_string()
        async with self._lock:
            turns = list(await self._load(name))
            turns.append(turn)
            turns = turns[-self.max_turns :]
            if self.max_tokens is not None and self._tokens(turns) > self.max_tokens:
                if self.overflow == "error":
                    raise MemoryBudgetExceeded(
                        f"memory for {name} would hold {self._tokens(turns)} tokens, over "
                        f"max_tokens={self.max_tokens}; raise the budget or use "
                        "overflow='truncate_oldest'"
                    )
                while len(turns) > 1 and self._tokens(turns) > self.max_tokens:
                    turns.pop(0)
            self._turns[name] = turns
            if self._store is not None:
                payload = {"turns": [t.model_dump() for t in turns]}
                await self._store.save_memory_state(name, payload)

    async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot:
        if key is None:
            return MemorySnapshot()
        async with self._lock:
            return MemorySnapshot(turns=list(await self._load(key.as_string())))

    async def clear(self, key: MemoryKey | None) -> None:
        if key is None:
            return
        name = key.as_string()
        async with self._lock:
            self._turns[name] = []
            if self._store is not None:
                await self._store.save_memory_state(name, {"turns": []})

    async def aclose(self) -> None:
        """Nothing to release; here so every resource closes the same way (`async with`)."""
