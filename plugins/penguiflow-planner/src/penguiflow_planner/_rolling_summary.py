"""`rolling_summary`: recent turns verbatim, older ones folded into a summary by the LLM.

Summaries are written in the background, so a run never waits for one. Health tells how it
goes: `healthy`; `retry` after a failed summary (the turns wait, and a retry comes later);
`degraded` after `max_retries` failures in a row (older turns are kept verbatim, within the
token budget, until a summary succeeds again); `recovering` while a summary is attempted from
`degraded`. With a token budget, a snapshot that does not fit follows `overflow`:
`truncate_summary` (shorten the summary first), `truncate_oldest` (drop the oldest turns first)
or `error` (raise `MemoryBudgetExceeded`). With a state store that supports memory state,
every key's memory survives restarts (saved under the key's injective `MemoryKey.as_string()`;
state saved by 4.0.0 under an unambiguous `tenant/user/session` string is still read, through
`penguiflow.memory.read_memory_state`).

When retries happen: by default a failed summary is retried with the next turn, and a
degraded memory tries again with the next turn. With `retry_backoff_s` the n-th retry is due
`retry_backoff_s * 2**(n-1)` seconds after the failure, and with `recovery_interval_s` a
degraded memory tries again at most that often, both measured by `time_source`. Nothing
sleeps: a retry that is due starts the next time the memory is used (a turn, a snapshot, a
`flush()`), so a test drives retries by moving its clock.

The memory owns its background summaries: `await memory.flush()` waits for them (and starts
those that are due), and `await memory.aclose()` (or leaving `async with memory:`) cancels and
awaits them, so none outlives the memory. A cancelled summary loses nothing: its turns stay
pending and are summarised later. The memory stays usable after `aclose()`.

Driver `rolling_summary` of `penguiflow.memory_strategies`:
`resolve_driver("memory_strategy", "rolling_summary", llm=client, max_turns=6)`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, Literal

import anyio

from penguiflow.errors import ConfigurationError, InvalidTypeError, describe_exception
from penguiflow.llm import LLMMessage
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
Health = Literal["healthy", "retry", "degraded", "recovering"]
#: writes a new summary from the previous one and the turns to fold in
Summarize = Callable[[str, list[ConversationTurn]], Awaitable[str]]
#: counts the tokens of (summary, pending turns, recent turns) for a memory in that health
TokenCounter = Callable[[str, Sequence[ConversationTurn], Sequence[ConversationTurn], Health], int]
#: told (key, "health" or "summary", old, new) when a key's health or summary changes
Listener = Callable[[MemoryKey, str, str, str], None]

_SUMMARY_PROMPT = (
    "Update the running summary of a conversation. Keep facts, decisions, names and open "
    "questions; drop chit-chat. Reply with the new summary only."
)


async def complete_text(
    client: Any, messages: Sequence[Mapping[str, Any]], *, response_format: Any = None
) -> str:
    """The reply text of one completion, whatever kind of client wrote it (ours return an
    `LLMResponse`; PenguiFlow's hand-written clients a `str` or `(str, cost)`), through the
    planner's `call_client`, which also gives each kind `response_format` in its own form."""
    from ._llm_calls import call_client  # the planner's client layer, loaded when first needed

    return (await call_client(client, messages, response_format=response_format)).text


class _KeyState:
    __slots__ = ("failures", "health", "last_attempt", "pending", "retry_at", "summary", "turns")

    def __init__(self) -> None:
        self.summary = ""
        self.turns: list[ConversationTurn] = []
        #: turns waiting to be folded into the summary (PenguiFlow's backlog while degraded)
        self.pending: list[ConversationTurn] = []
        self.health: Health = "healthy"
        self.failures = 0
        # Clock readings of this process only, so never saved: after a restart a retry or a
        # recovery is simply due.
        self.retry_at: float | None = None
        self.last_attempt: float | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "turns": [t.model_dump() for t in self.turns],
            "pending": [t.model_dump() for t in self.pending],
            "health": self.health,
            "failures": self.failures,
        }

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> _KeyState:
        state = cls()
        state.summary = str(data.get("summary") or "")
        state.turns = [ConversationTurn.model_validate(t) for t in data.get("turns") or []]
        state.pending = [ConversationTurn.model_validate(t) for t in data.get("pending") or []]
        health = data.get("health", "healthy")
        state.health = health if health in ("retry", "degraded", "recovering") else "healthy"
        state.failures = int(data.get("failures") or 0)
        return state


class RollingSummaryMemory(AsyncResource):
    """The `rolling_summary` strategy (see the module docstring).

    `llm` writes the summaries, or `summarize(previous, turns)` does (one of the two is
    needed). Options beyond the driver's first five serve PenguiFlow's
    `DefaultShortTermMemory`, which is built on this class, and anyone who wants its behaviour:
    `summary_max_tokens` caps the summary itself (its end is kept), `estimator` counts a text's
    tokens, `token_counter` counts a whole memory's, `backlog_limit` bounds the turns kept
    for a degraded memory, `retry_backoff_s`, `recovery_interval_s` and `time_source` time
    retries, `listener` hears health and summary changes, and `penguiflow_semantics=True`
    gives PenguiFlow 3.11's view and budget: pending turns are part of the context while
    summaries are healthy, only the recent turns while degraded, and the budget is enforced on
    what is stored, when turns and summaries are written (`add_turn` raises
    `MemoryBudgetExceeded` under `overflow="error"`; the refused turn is not stored), rather
    than on each snapshot. `max_turns=0` sends every turn to the summary.
    """

    def __init__(
        self,
        llm: Any = None,
        *,
        max_turns: int = 6,
        max_tokens: int | None = None,
        overflow: Overflow = "truncate_summary",
        max_retries: int = 2,
        state_store: Any = None,
        summarize: Summarize | None = None,
        summary_max_tokens: int | None = None,
        estimator: Callable[[str], int] = estimate_tokens,
        token_counter: TokenCounter | None = None,
        backlog_limit: int | None = None,
        retry_backoff_s: float | None = None,
        recovery_interval_s: float | None = None,
        time_source: Callable[[], float] | None = None,
        listener: Listener | None = None,
        penguiflow_semantics: bool = False,
    ) -> None:
        if llm is None and summarize is None:
            raise InvalidTypeError(
                "RollingSummaryMemory needs llm=... (a JSON LLM client that writes the "
                "summaries) or summarize=... (an async function (previous, turns) -> summary)"
            )
        if max_turns < 0:
            raise ConfigurationError(f"max_turns must be >= 0, got {max_turns}")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        if overflow not in ("truncate_summary", "truncate_oldest", "error"):
            raise ConfigurationError(
                "overflow must be 'truncate_summary', 'truncate_oldest' or 'error', got "
                f"{overflow!r}"
            )
        for name, value in (
            ("max_retries", max_retries),
            ("summary_max_tokens", summary_max_tokens),
            ("backlog_limit", backlog_limit),
            ("retry_backoff_s", retry_backoff_s),
            ("recovery_interval_s", recovery_interval_s),
        ):
            if value is not None and value < 0:
                raise ConfigurationError(f"{name} must be >= 0, got {value}")
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
        self.summary_max_tokens = summary_max_tokens
        self.backlog_limit = backlog_limit
        self.retry_backoff_s = retry_backoff_s
        self.recovery_interval_s = recovery_interval_s
        self.penguiflow_semantics = penguiflow_semantics
        self._summarize: Summarize = summarize or self._summarize_with_llm
        self._estimator = estimator
        self._token_counter = token_counter
        self._clock = time_source or time.monotonic
        self._listener = listener
        self._store = state_store
        self._states: dict[str, _KeyState] = {}
        self._keys: dict[str, MemoryKey] = {}
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
            turns = [*state.turns, turn]
            cut = max(0, len(turns) - self.max_turns)
            pending = state.pending + turns[:cut]
            turns = turns[cut:]
            if state.health in ("degraded", "recovering") and self.backlog_limit is not None:
                pending = pending[max(0, len(pending) - self.backlog_limit) :]
            summary = state.summary
            if self.penguiflow_semantics:
                # Raises before anything is stored: a refused turn leaves the memory as it was.
                summary, pending, turns = self._enforce(key, summary, pending, turns, state.health)
            state.summary, state.pending, state.turns = summary, pending, turns
            await self._save(key, state)
            due = self._due(state, new_turn=True)
        if due:
            self._schedule(key)

    async def snapshot(self, key: MemoryKey | None) -> MemorySnapshot:
        if key is None:
            return MemorySnapshot()
        async with self._lock(key):
            state = await self._load(key)
            due = self._due(state, new_turn=False)
            summary, turns = self.view(state.summary, state.pending, state.turns, state.health)
            # The kernel's snapshot knows three healths; a recovery is not healthy yet.
            health = "degraded" if state.health == "recovering" else state.health
            if not self.penguiflow_semantics:
                snapshot = self._fit(key, summary, turns, health)
            else:
                snapshot = MemorySnapshot(summary=summary or None, turns=turns, health=health)
        if due:
            self._schedule(key)
        return snapshot

    async def clear(self, key: MemoryKey | None) -> None:
        if key is None:
            return
        name = key.as_string()
        await self._cancel([self._tasks.pop(name)] if name in self._tasks else [])
        async with self._lock(key):
            self._states[name] = _KeyState()
            # Saved even when empty: it shadows any entry in 4.0.0's format for this key.
            await self._save(key, self._states[name])

    def view(
        self,
        summary: str,
        pending: Sequence[ConversationTurn],
        turns: Sequence[ConversationTurn],
        health: Health,
    ) -> tuple[str, list[ConversationTurn]]:
        """What a snapshot shows for this state: the summary and the turns, oldest first."""
        if self.penguiflow_semantics:
            if health == "degraded":
                return "", list(turns)
            if health == "recovering":
                return summary, list(turns)
            return summary, [*pending, *turns]
        if health in ("degraded", "recovering"):
            return summary, [*pending, *turns]  # no summary stands in for them
        return summary, list(turns)

    # -- background summaries ----------------------------------------------------------------

    async def flush(self) -> None:
        """Wait for the summaries in progress, and start and wait for those that are due
        (pending turns of a healthy key; retries whose backoff has passed). A retry still
        waiting out its backoff is not waited for."""
        while True:
            if self._tasks:
                await asyncio.wait(list(self._tasks.values()))
                continue
            due = [name for name, state in self._states.items() if self._due(state, False)]
            if not due:
                return
            for name in due:
                self._schedule(self._keys[name])

    async def aclose(self) -> None:
        """Cancel the summaries in progress and wait until they have ended (idempotent).
        Their turns stay pending; `flush()` first to let them finish instead."""
        while self._tasks:
            await self._cancel(list(self._tasks.values()))

    async def health(self, key: MemoryKey) -> Health:
        async with self._lock(key):
            return (await self._load(key)).health

    def forget(self, key: MemoryKey) -> None:
        """Drop what this memory holds in process for `key` and cancel its summary: the next
        use reads the state store again. For a state that changed underneath (another process
        wrote it; PenguiFlow's `from_dict()` replaced it). A summary already running for the
        old state is discarded when it ends."""
        name = key.as_string()
        self._states.pop(name, None)
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()

    async def _cancel(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            # Shielded: once cancelled, the tasks are awaited even if the caller is cancelled
            # meanwhile, so none is left running unowned.
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)

    def _due(self, state: _KeyState, new_turn: bool) -> bool:
        """Whether a summary should start for this state now (never twice: `_schedule`
        skips a key whose summary is running)."""
        if not state.pending:
            return False
        now = self._clock()
        if state.health == "healthy":
            return True
        if state.health == "retry":
            if self.retry_backoff_s is None:
                return new_turn
            return state.retry_at is None or now >= state.retry_at
        # degraded, or recovering with no summary running (a process stopped mid-recovery):
        # like PenguiFlow, only a new turn starts a recovery.
        if not new_turn:
            return False
        if self.recovery_interval_s is None or state.last_attempt is None:
            return True
        return now - state.last_attempt >= self.recovery_interval_s

    def _schedule(self, key: MemoryKey) -> None:
        name = key.as_string()
        running = self._tasks.get(name)
        if running is not None and not running.done() and running is not asyncio.current_task():
            return  # that summary will pick up the new turns when it ends
        task = asyncio.get_running_loop().create_task(
            self._summarise(key), name=f"penguiflow-rolling-summary:{name}"
        )
        self._tasks[name] = task
        task.add_done_callback(partial(self._forget_task, name))

    def _forget_task(self, name: str, done: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is done:
            del self._tasks[name]

    async def _summarise(self, key: MemoryKey) -> None:
        async with self._lock(key):
            state = await self._load(key)
            batch = list(state.pending)
            previous = state.summary
            if not batch:
                return
            if state.health in ("degraded", "recovering"):
                state.last_attempt = self._clock()
                self._set_health(key, state, "recovering")
                await self._save(key, state)
        try:
            summary = await self._summarize(previous, batch)
            if not isinstance(summary, str):
                raise InvalidTypeError(f"a summary must be a str, got {type(summary).__name__}")
            async with self._lock(key):
                if self._states.get(key.as_string()) is not state:
                    return  # forgotten meanwhile: this summary is of a state no longer here
                summary = self._cap_summary(key, summary)
                done = {id(turn) for turn in batch}
                # Turns added meanwhile stay pending; turns a budget dropped meanwhile are gone.
                pending = [turn for turn in state.pending if id(turn) not in done]
                turns = state.turns
                if self.penguiflow_semantics:
                    summary, pending, turns = self._enforce(key, summary, pending, turns, "healthy")
                old_summary = state.summary
                state.summary, state.pending, state.turns = summary, pending, turns
                state.failures = 0
                state.retry_at = None
                self._set_health(key, state, "healthy")
                await self._save(key, state)
                self._tell(key, "summary", old_summary, summary)
                again = self._due(state, new_turn=False)
        except Exception as exc:  # any failure: keep the turns, report the health
            await self._failed(key, state, exc)
            return
        if again:  # turns added while this summary ran: a fresh task folds them in
            self._schedule(key)

    async def _failed(self, key: MemoryKey, started: _KeyState, exc: Exception) -> None:
        async with self._lock(key):
            state = self._states.get(key.as_string())
            if state is not started:
                return
            state.failures += 1
            now = self._clock()
            if state.health == "recovering" or state.failures > self.max_retries:
                state.last_attempt = now
                if self.backlog_limit is not None:
                    state.pending = state.pending[max(0, len(state.pending) - self.backlog_limit) :]
                self._set_health(key, state, "degraded")
            else:
                if self.retry_backoff_s is not None:
                    state.retry_at = now + self.retry_backoff_s * 2 ** (state.failures - 1)
                self._set_health(key, state, "retry")
            await self._save(key, state)
        logger.warning(
            "rolling summary for %r failed (%s); health %s",
            key,
            describe_exception(exc),
            state.health,
        )

    async def _summarize_with_llm(self, previous: str, turns: list[ConversationTurn]) -> str:
        transcript = "\n".join(f"User: {t.user}\nAssistant: {t.assistant}" for t in turns)
        messages = [
            LLMMessage(role="system", content=_SUMMARY_PROMPT).model_dump(exclude_none=True),
            LLMMessage(
                role="user",
                content=f"Summary so far:\n{previous or '(none)'}\n\nNew turns:\n{transcript}",
            ).model_dump(exclude_none=True),
        ]
        summary = (await complete_text(self.llm, messages)).strip()
        if not summary:
            raise ConfigurationError("the model returned an empty summary")
        return summary

    # -- budgets -----------------------------------------------------------------------------

    def _cap_summary(self, key: MemoryKey, summary: str) -> str:
        cap = self.summary_max_tokens
        if cap is None:
            return summary
        tokens = self._estimator(summary)
        if not summary or tokens <= cap:
            return summary if cap > 0 else ""
        if self.overflow == "error" and cap > 0:
            # Counted as a failed summary by the caller: the text is not stored.
            raise MemoryBudgetExceeded(
                f"the summary for {key!r} holds {tokens} tokens, over summary_max_tokens={cap}; "
                "raise the budget or choose overflow='truncate_summary' or 'truncate_oldest'"
            )
        return _keep_end(summary, cap, self._estimator)

    def _count(
        self,
        summary: str,
        pending: Sequence[ConversationTurn],
        turns: Sequence[ConversationTurn],
        health: Health,
    ) -> int:
        if self._token_counter is not None:
            return self._token_counter(summary, pending, turns, health)
        shown_summary, shown = self.view(summary, pending, turns, health)
        return self._estimator(shown_summary) + sum(
            self._estimator(t.user) + self._estimator(t.assistant) for t in shown
        )

    def _enforce(
        self,
        key: MemoryKey,
        summary: str,
        pending: list[ConversationTurn],
        turns: list[ConversationTurn],
        health: Health,
    ) -> tuple[str, list[ConversationTurn], list[ConversationTurn]]:
        """PenguiFlow's budget on stored state: shorten the summary (`truncate_summary`), then
        drop the oldest pending turns, then the oldest recent turns, then the summary.

        Only what the context shows is cut: while degraded or recovering the pending turns
        wait for the recovery and are left alone (the backlog limit bounds them)."""
        budget = self.max_tokens
        if budget is None:
            return summary, pending, turns
        pending, turns = list(pending), list(turns)
        shows_pending = health not in ("degraded", "recovering")
        shows_summary = health != "degraded"
        while (tokens := self._count(summary, pending, turns, health)) > budget:
            if self.overflow == "error":
                raise MemoryBudgetExceeded(
                    f"memory for {key!r} would hold {tokens} tokens, over "
                    f"max_tokens={budget}; raise the budget or choose "
                    "overflow='truncate_summary' or 'truncate_oldest'"
                )
            if self.overflow == "truncate_summary" and summary and shows_summary:
                # Shrinks strictly each time, so this ends (PenguiFlow 3.11 could loop forever
                # once its summary fitted summary_max_tokens but not the total).
                keep = min(len(summary) - 1, len(summary) * budget // max(tokens, 1))
                summary = summary[len(summary) - keep :] if keep > 0 else ""
            elif pending and shows_pending:
                pending.pop(0)
            elif turns:
                turns.pop(0)
            elif summary and shows_summary:
                summary = ""
            else:
                break  # nothing shown is left to cut
        return summary, pending, turns

    def _fit(
        self, key: MemoryKey, summary: str, turns: list[ConversationTurn], health: Any
    ) -> MemorySnapshot:
        """The driver's own budget, applied to each snapshot (nothing stored is cut)."""

        def size() -> int:
            return self._estimator(summary) + sum(
                self._estimator(t.user) + self._estimator(t.assistant) for t in turns
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
            self._keys[name] = key
        return state

    async def _save(self, key: MemoryKey, state: _KeyState) -> None:
        if self._store is not None:
            await write_memory_state(self._store, key, state.dump())

    def _set_health(self, key: MemoryKey, state: _KeyState, health: Health) -> None:
        old, state.health = state.health, health
        if old != health:
            self._tell(key, "health", old, health)

    def _tell(self, key: MemoryKey, what: str, old: str, new: str) -> None:
        if self._listener is None:
            return
        try:
            self._listener(key, what, old, new)
        except Exception as exc:  # a listener's bug must not lose the memory's state
            logger.warning("memory listener failed on %s change: %s", what, describe_exception(exc))


def _keep_end(text: str, cap: int, estimator: Callable[[str], int]) -> str:
    """The end of `text` that fits `cap` tokens (a rolling summary's latest facts come last)."""
    tokens = estimator(text)
    keep = max(1, len(text) * cap // max(tokens, 1))
    text = text[len(text) - keep :]
    while text and estimator(text) > cap:
        text = text[max(1, len(text) // 8) :]
    return text


def rolling_summary_memory(name: str, **options: Any) -> RollingSummaryMemory:
    """The `rolling_summary` driver; needs `llm=` (the client that writes summaries)."""
    llm = options.pop("llm", None)
    if llm is None and options.get("summarize") is None:
        raise InvalidTypeError(
            f"the {name!r} memory strategy needs llm=... (a JSON LLM client that writes the "
            "summaries), e.g. resolve_driver('memory_strategy', 'rolling_summary', llm=client)"
        )
    return RollingSummaryMemory(llm, **options)
