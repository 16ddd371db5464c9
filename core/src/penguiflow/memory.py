"""Short-term memory strategies: what a conversation remembers between turns.

Memory is keyed by (tenant, user, session); with no key there is no memory at all (fail
closed), so one user's turns can never leak into another's prompt. Strategies are drivers of
the `penguiflow.memory_strategies` group; `none` and `truncation` are built in, and the
planner plugin adds `rolling_summary`.

A key's storage string (`MemoryKey.as_string()`) is injective: two different keys never share
a string, whatever their parts contain. 4.0.0 stored memory under `tenant/user/session`
unescaped, so `("acme/eu", "alice", "s1")` and `("acme", "eu/alice", "s1")` shared one entry;
`read_memory_state` still finds state saved that way for keys whose old string was unambiguous
(docs/memory.md, "Storage keys").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigurationError, PenguiFlowError
from .llm import LLMMessage
from .resources import AsyncResource
from .state import SupportsMemoryState, require_capabilities

__all__ = [
    "ConversationTurn",
    "MemoryBudgetExceeded",
    "MemoryKey",
    "MemorySnapshot",
    "MemoryStrategy",
    "NoMemory",
    "TruncationMemory",
    "estimate_tokens",
    "read_memory_state",
    "write_memory_state",
]

MemoryHealth = Literal["healthy", "retry", "degraded"]
OverflowPolicy = Literal["truncate_oldest", "error"]


class MemoryBudgetExceeded(PenguiFlowError, RuntimeError):
    """A turn does not fit the memory's token budget and the policy is `error`."""


class MemoryKey(BaseModel):
    """Whose memory: every part is required, so a partial key cannot share memory.

    Built by keyword or, as PenguiFlow 3.x's planner builds it, positionally:
    `MemoryKey("acme", "alice", "chat-1")`. An empty part is refused (PenguiFlow accepted
    one); frozen, so a key can be a dict key and cannot change under a running session."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    session_id: str = Field(min_length=1)

    def __init__(self, tenant_id: str, user_id: str, session_id: str) -> None:
        # Plain parameters, so both call forms work and a missing part is a TypeError that
        # names it, as with PenguiFlow's dataclass; pydantic still validates each part.
        super().__init__(tenant_id=tenant_id, user_id=user_id, session_id=session_id)

    def composite(self) -> str:
        """PenguiFlow's display form, `tenant:user:session`, unescaped.

        Not injective (`("a:b", "c", "d")` and `("a", "b:c", "d")` give the same string), so
        nothing here stores or looks up memory under it: storage uses `as_string()`."""
        return f"{self.tenant_id}:{self.user_id}:{self.session_id}"

    def as_string(self) -> str:
        """The string a state store keeps this key's memory under:
        `v2:<tenant>:<user>:<session>`, each part with `%`, `/` and `:` percent-escaped.

        Injective: the escaped parts hold no `:`, and escaping `%` first makes the escaping
        reversible, so the string decodes back to exactly one key. It holds no `/` either,
        while every string 4.0.0 wrote (`tenant/user/session`) holds at least two: a new key
        can never land on an entry written in the old format by someone else."""
        parts = (self.tenant_id, self.user_id, self.session_id)
        return _KEY_PREFIX + ":".join(_escape(part) for part in parts)

    def legacy_string(self) -> str | None:
        """The string 4.0.0 kept this key's memory under (`tenant/user/session`, unescaped),
        or None when that string was ambiguous: with a `/` in any part, the same string was
        also another key's, so what is stored there may be someone else's memory.

        Without a `/` in any part the old string has exactly two, and no other key wrote
        it: reading it back (`read_memory_state`) cannot cross tenants."""
        parts = (self.tenant_id, self.user_id, self.session_id)
        if any("/" in part for part in parts):
            return None
        return "/".join(parts)


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


_KEY_PREFIX = "v2:"


def _escape(part: str) -> str:
    # `%` first: a `%2F` already in the input becomes `%252F`, never a `/` we escaped.
    return part.replace("%", "%25").replace("/", "%2F").replace(":", "%3A")


async def read_memory_state(store: SupportsMemoryState, key: MemoryKey) -> dict[str, Any] | None:
    """`key`'s saved memory in `store`, or None; what strategies with a state store read.

    Read-through migration from 4.0.0's format: on a miss under `key.as_string()`, the
    state saved under `key.legacy_string()` is returned when that string was unambiguous
    (never when a part holds a `/`: that entry may belong to another tenant or user). The old
    entry is left in place, unread once anything is written under the new string, which
    `write_memory_state` always uses; nothing is rewritten while reading."""
    state = await store.load_memory_state(key.as_string())
    if state is None:
        legacy = key.legacy_string()
        if legacy is not None:
            state = await store.load_memory_state(legacy)
    return state


async def write_memory_state(
    store: SupportsMemoryState, key: MemoryKey, state: dict[str, Any]
) -> None:
    """Save `key`'s memory in `store`, under `key.as_string()` (the injective format)."""
    await store.save_memory_state(key.as_string(), state)


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
    `token_counter(turns)` says how many tokens turns take in a prompt (default: about four
    characters a token over their text); PenguiFlow's `DefaultShortTermMemory` counts the
    JSON it shows the model, digests included, with its configured estimator.
    """

    def __init__(
        self,
        *,
        max_turns: int = 20,
        max_tokens: int | None = None,
        overflow: OverflowPolicy = "truncate_oldest",
        state_store: Any = None,
        token_counter: Callable[[Sequence[ConversationTurn]], int] | None = None,
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
        self._token_counter = token_counter
        self._turns: dict[str, list[ConversationTurn]] = {}
        self._lock = asyncio.Lock()

    async def _load(self, key: MemoryKey) -> list[ConversationTurn]:
        name = key.as_string()
        turns = self._turns.get(name)
        if turns is None:
            turns = []
            if self._store is not None:
                saved = await read_memory_state(self._store, key)
                if saved:
                    turns = [ConversationTurn.model_validate(t) for t in saved.get("turns", [])]
            self._turns[name] = turns
        return turns

    def _tokens(self, turns: list[ConversationTurn]) -> int:
        if self._token_counter is not None:
            return self._token_counter(turns)
        return sum(estimate_tokens(t.user) + estimate_tokens(t.assistant) for t in turns)

    async def add_turn(self, key: MemoryKey | None, turn: ConversationTurn) -> None:
        if key is None:
            return
        async with self._lock:
            turns = list(await self._load(key))
            turns.append(turn)
            turns = turns[-self.max_turns :]
            if self.max_tokens is not None and self._tokens(turns) > self.max_tokens:
                if self.overflow == "error":
                    raise MemoryBudgetExceeded(
                        f"memory for {key!r} would hold {self._tokens(turns)} tokens, over "
                        f"max_tokens={self.max_tokens}; raise the budget or use "
                        "overflow='truncate_oldest'"
                    )
                while len(turns) > 1 and self._tokens(turns) > self.max_tokens:
                    turns.pop(0)
            self._turns[key.as_string()] = turns
            if self._store is not None:
                payload = {"turns": [t.model_dump() for t in turns]}
                await write_memory_state(self._store, key, payload)

    async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot:
        if key is None:
            return MemorySnapshot()
        async with self._lock:
            return MemorySnapshot(turns=list(await self._load(key)))

    async def clear(self, key: MemoryKey | None) -> None:
        if key is None:
            return
        async with self._lock:
            self._turns[key.as_string()] = []
            if self._store is not None:
                # Saved even when empty: it shadows any entry in the old format for this key.
                await write_memory_state(self._store, key, {"turns": []})

    async def aclose(self) -> None:
        """Nothing to release; here so every resource closes the same way (`async with`)."""
