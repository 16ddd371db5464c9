"""`rolling_summary`: recent turns verbatim, older ones folded into a summary by the LLM.

Summaries are written in the background, so a run never waits for one. Health tells how it
goes: `healthy`; `retry` after a failed summary (the turns wait and the next turn retries);
`degraded` after `max_retries` failures in a row (older turns are kept verbatim, within the
token budget, until a summary succeeds again). With a token budget, a snapshot that does not
fit follows `overflow`: `truncate_summary` (shorten the summary first), `truncate_oldest`
(drop the oldest turns first) or `error` (raise `MemoryBudgetExceeded`). With a state store
that supports memory state, every key's memory survives restarts (saved under the key's
injective `MemoryKey.as_string()`; state saved by 4.0.0 under an unambiguous `tenant/user/session`
string is still read, through `penguiflow.memory.read_memory_state`).

The memory owns its background summaries: `await memory.flush()` waits for them, and
`await memory.aclose()` (or leaving `async with memory:`) cancels and awaits them, so none
outlives the memory. A cancelled summary loses nothing: its turns stay pending and the next
turn schedules them again. The memory stays usable after `aclose()`.

Driver `rolling_summary` of `penguiflow.memory_strategies`:
`resolve_driver("memory_strategy", "rolling_summary", llm=client, max_turns=6)`.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, Literal

import anyio

from penguiflow.errors import ConfigurationError, InvalidTypeError, describe_exception
from penguiflow.llm import JSONLLMClient, LLMMessage
from penguiflow.memory import (
    ConversationTurn,
    MemoryBudgetExceeded,
    MemoryKey,
    MemorySnapshot,
    estimate_tokens,
    read_memory_state,
    write_memory_state,
)
from penguiflow.resources import AsyncResource
from penguiflow.state import require_capabilities

__all__ = ["RollingSummaryMemory", "rolling_summary_memory"]

logger = logging.getLogger("penguiflow.planner.memory")

Overflow = Literal["truncate_summary", "truncate_oldest", "error"]
Health = Literal["healthy", "retry", "degraded"]

_SUMMARY_PROMPT = (
    "Update the running summary of a conversation. Keep facts, decisions, names and open "
    "questions; drop chit-chat. Reply with the new summary only."
)


class _KeyState:
    __slots__ = ("failures", "health", "pending", "summary", "turns")

    def __init__(self) -> None:
        self.summary = ""
        self.turns: list[ConversationTurn] = []
        #: turns waiting to be folded into the summary
        self.pending: list[ConversationTurn] = []
        self.health: Health = "healthy"
        self.failures = 0

    def dump(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "turns": [t.model_dump() for t in self.turns],
            "pending": [t.model_dump() for t in self.pending],
            "health": self.health,
            "failures": self.failures,
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> _KeyState:
        state = cls()
        state.summary = str(data.get("summary", ""))
        state.turns = [ConversationTurn.model_validate(t) for t in data.get("turns", [])]
        state.pending = [ConversationTurn.model_validate(t) for t in data.get("pending", [])]
        state.health = data.get("health", "healthy")
        state.failures = int(data.get("failures", 0))
        return state


class RollingSummaryMemory(AsyncResource):
    def __init__(
        self,
        llm: JSONLLMClient,
        *,
        max_turns: int = 6,
        max_tokens: int | None = None,
        overflow: Overflow = "truncate_summary",
        max_retries: int = 2,
        state_store: Any = None,
    ) -> None:
        if max_turns < 1:
            raise ConfigurationError(f"max_turns must be >= 1, got {max_turns}")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        if overflow not in ("truncate_summary", "truncate_oldest", "error"):
            raise ConfigurationError(
                "overflow must be 'truncate_summary', 'truncate_oldest' or 'error', got "
                f"{overflow!r}"
            )
        if state_store is not None:
            require_capabilities(
                state_store,
                feature="rolling summary persistence",
                methods=["save_memory_state", "load_memory_state"],
            )
        self.llm = llm
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.overflow = overflow
        self.max_retries = max_retries
        self._store = state_store
        self._states: dict[str, _KeyState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: the summary running for each key. A summary must not delay the run that caused it,
        #: so it cannot live in that run's task group; the memory owns it instead (aclose()).
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- the strategy protocol ---------------------------------------------------------------

    async def add_turn(self, key: MemoryKey | None, turn: ConversationTurn) -> None:
        if key is None:
            return
        async with self._lock(key):
            state = await self._load(key)
            state.turns.append(turn)
            if len(state.turns) > self.max_turns:
                overflow = len(state.turns) - self.max_turns
                state.pending += state.turns[:overflow]
                state.turns = state.turns[overflow:]
            await self._save(key, state)
        if state.pending:
            self._schedule(key)

    async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot:
        if key is None:
            return MemorySnapshot()
        async with self._lock(key):
            state = await self._load(key)
            summary = state.summary
            turns = list(state.turns)
            if state.health == "degraded":
                turns = state.pending + turns  # no summary to stand in for them
            return self._fit(key, summary, turns, state.health)

    async def clear(self, key: MemoryKey | None) -> None:
        if key is None:
            return
        name = key.as_string()
        await self._cancel([self._tasks.pop(name)] if name in self._tasks else [])
        async with self._lock(key):
            self._states[name] = _KeyState()
            # Saved even when empty: it shadows any entry in 4.0.0's format for this key.
            await self._save(key, self._states[name])

    # -- background summaries ----------------------------------------------------------------

    async def flush(self) -> None:
        """Wait for the summaries in progress, and those they schedule (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def aclose(self) -> None:
        """Cancel the summaries in progress and wait until they have ended (idempotent).
        Their turns stay pending; `flush()` first to let them finish instead."""
        while self._tasks:
            await self._cancel(list(self._tasks.values()))

    async def _cancel(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            # Shielded: once cancelled, the tasks are awaited even if the caller is cancelled
            # meanwhile, so none is left running unowned.
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)

    async def health(self, key: MemoryKey) -> Health:
        async with self._lock(key):
            return (await self._load(key)).health

    def _schedule(self, key: MemoryKey) -> None:
        name = key.as_string()
        running = self._tasks.get(name)
        if running is not None and not running.done() and running is not asyncio.current_task():
            return  # that summary will pick up the new turns when it ends
        task = asyncio.get_running_loop().create_task(
            self._summarise(key), name=f"penguiflow-rolling-summary:{name}"
        )
        self._tasks[name] = task
        task.add_done_callback(partial(self._forget, name))

    def _forget(self, name: str, done: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is done:
            del self._tasks[name]

    async def _summarise(self, key: MemoryKey) -> None:
        async with self._lock(key):
            state = await self._load(key)
            pending = list(state.pending)
            previous = state.summary
        if not pending:
            return
        transcript = "\n".join(f"User: {t.user}\nAssistant: {t.assistant}" for t in pending)
        messages = [
            LLMMessage(role="system", content=_SUMMARY_PROMPT),
            LLMMessage(
                role="user",
                content=f"Summary so far:\n{previous or '(none)'}\n\nNew turns:\n{transcript}",
            ),
        ]
        try:
            reply = await self.llm.complete(messages=messages)
            summary = reply.text.strip()
            if not summary:
                raise ConfigurationError("the model returned an empty summary")
        except Exception as exc:  # any failure: keep the turns, report the health
            async with self._lock(key):
                state = await self._load(key)
                state.failures += 1
                state.health = "degraded" if state.failures > self.max_retries else "retry"
                await self._save(key, state)
            logger.warning(
                "rolling summary for %r failed (%s); health %s",
                key,
                describe_exception(exc),
                state.health,
            )
            return
        async with self._lock(key):
            state = await self._load(key)
            state.summary = summary
            state.pending = state.pending[len(pending) :]  # turns added meanwhile stay pending
            state.failures = 0
            state.health = "healthy"
            await self._save(key, state)
            again = bool(state.pending)
        if again:  # turns added while this summary ran: a fresh task folds them in
            self._schedule(key)

    # -- helpers -----------------------------------------------------------------------------

    # Every per-key table (states, locks, tasks) is keyed by the injective `as_string()`, so
    # two keys whose parts merely join alike never share a lock, a summary or a state.

    def _lock(self, key: MemoryKey) -> asyncio.Lock:
        name = key.as_string()
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    async def _load(self, key: MemoryKey) -> _KeyState:
        name = key.as_string()
        state = self._states.get(name)
        if state is None:
            saved = await read_memory_state(self._store, key) if self._store is not None else None
            state = _KeyState.load(saved) if saved else _KeyState()
            self._states[name] = state
        return state

    async def _save(self, key: MemoryKey, state: _KeyState) -> None:
        if self._store is not None:
            await write_memory_state(self._store, key, state.dump())

    def _fit(
        self, key: MemoryKey, summary: str, turns: list[ConversationTurn], health: Health
    ) -> MemorySnapshot:
        def size() -> int:
            return estimate_tokens(summary) + sum(
                estimate_tokens(t.user) + estimate_tokens(t.assistant) for t in turns
            )

        budget = self.max_tokens
        if budget is not None and size() > budget:
            if self.overflow == "error":
                raise MemoryBudgetExceeded(
                    f"memory for {key!r} holds {size()} tokens, over max_tokens={budget}; raise "
                    "the budget or choose overflow='truncate_summary' or 'truncate_oldest'"
                )

            def shorten_summary() -> None:
                nonlocal summary
                while summary and size() > budget:
                    summary = summary[: max(0, len(summary) - max(16, len(summary) // 4))]

            def drop_oldest() -> None:
                while len(turns) > 1 and size() > budget:
                    turns.pop(0)

            # The policy says what gives way first; the other follows if still over budget.
            if self.overflow == "truncate_summary":
                shorten_summary()
                drop_oldest()
            else:
                drop_oldest()
                shorten_summary()
        return MemorySnapshot(summary=summary or None, turns=turns, health=health)


def rolling_summary_memory(name: str, **options: Any) -> RollingSummaryMemory:
    """The `rolling_summary` driver; needs `llm=` (the client that writes summaries)."""
    llm = options.pop("llm", None)
    if llm is None:
        raise InvalidTypeError(
            f"the {name!r} memory strategy needs llm=... (a JSON LLM client that writes the "
            "summaries), e.g. resolve_driver('memory_strategy', 'rolling_summary', llm=client)"
        )
    return RollingSummaryMemory(llm, **options)
