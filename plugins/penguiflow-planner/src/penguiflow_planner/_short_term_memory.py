"""`DefaultShortTermMemory`: PenguiFlow 3.11's one-conversation memory, as a facade over our
memory strategy drivers.

The drivers keep many conversations, each under a `MemoryKey`, and do the work: `truncation`
(the kernel's `TruncationMemory`) keeps the last turns within a budget; `rolling_summary`
(`RollingSummaryMemory`) folds older turns into a summary in the background, with health,
retries and recovery. This class gives one conversation of a driver PenguiFlow's interface:
`add_turn(turn)`, `get_llm_context()`, `to_dict()`... The driver saves each change to a
one-entry state store private to this object, so the synchronous half of PenguiFlow's
interface (`health`, `estimate_tokens()`, `to_dict()`) reads the latest state without awaiting
the driver, and `from_dict()` hands the driver a new state by replacing that entry.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from penguiflow.errors import ConfigurationError, InvalidTypeError, describe_exception
from penguiflow.memory import ConversationTurn as StoredTurn
from penguiflow.memory import MemoryKey, TruncationMemory, read_memory_state, write_memory_state
from penguiflow.resources import AsyncResource

from ._memory_types import (
    ConversationTurn,
    MemoryHealth,
    ShortTermMemoryConfig,
    TrajectoryDigest,
    default_token_estimator,
)
from ._rolling_summary import Health, RollingSummaryMemory

__all__ = ["STATE_VERSION", "DefaultShortTermMemory"]

logger = logging.getLogger("penguiflow.planner.memory")

#: the `version` of what `to_dict()` writes and `from_dict()` reads (PenguiFlow's)
STATE_VERSION = 1

#: the driver key of a memory not told whose conversation it holds (the driver is private to
#: the memory, so the key only shows in log lines)
_OWN_KEY = MemoryKey("local", "short-term-memory", "conversation")

Summarizer = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]


class _Slot:
    """A state store of one entry: where the driver saves its state, and where this memory
    reads it synchronously. Names are ignored: one memory, one conversation."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    async def save_memory_state(self, key: str, state: dict[str, Any]) -> None:
        self.state = state

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        return self.state


class DefaultShortTermMemory(AsyncResource):
    """PenguiFlow's default short-term memory (see the module docstring).

    `summarizer(request)` is awaited with `{"previous_summary": str, "turns": [{"user",
    "assistant", ...}]}` and returns a mapping with a string `"summary"`; it is required for
    `strategy="rolling_summary"`. `time_source` (default `time.monotonic`) times retries and
    recovery. Beyond PenguiFlow: `memory_key` names the conversation in log lines, and
    `on_background_change` is awaited (in the background) after each summary attempt, so an
    owner can persist what changed without a turn. Close with `aclose()` (or `async with`):
    it cancels the summary in progress.
    """

    def __init__(
        self,
        *,
        config: ShortTermMemoryConfig,
        summarizer: Summarizer | None = None,
        time_source: Callable[[], float] | None = None,
        memory_key: MemoryKey | None = None,
        on_background_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not isinstance(config, ShortTermMemoryConfig):
            raise InvalidTypeError(
                f"config must be a ShortTermMemoryConfig, got {type(config).__name__}"
            )
        if config.strategy == "rolling_summary" and summarizer is None:
            raise ConfigurationError(
                "strategy='rolling_summary' needs summarizer=... (an async function taking "
                "{'previous_summary', 'turns'} and returning {'summary': str}); the planner "
                "builds one from its LLM client"
            )
        self._config = config
        self._summarizer = summarizer
        self._clock = time_source or time.monotonic
        self._key = memory_key or _OWN_KEY
        self._on_background_change = on_background_change
        self._estimator = config.token_estimator or default_token_estimator
        self._slot = _Slot()
        self._callbacks: set[asyncio.Task[None]] = set()
        self._driver: TruncationMemory | RollingSummaryMemory | None = self._new_driver()

    # -- PenguiFlow's ShortTermMemory --------------------------------------------------------

    @property
    def health(self) -> MemoryHealth:
        """The summaries' health (always HEALTHY without `rolling_summary`)."""
        state = self._slot.state or {}
        return MemoryHealth(state.get("health", "healthy"))

    async def add_turn(self, turn: ConversationTurn) -> None:
        """Remember a finished turn. Raises `MemoryBudgetExceeded` under
        `overflow_policy="error"` when it does not fit; the turn is then not stored."""
        if not isinstance(turn, ConversationTurn):
            raise InvalidTypeError(
                "add_turn() takes a penguiflow.planner.memory.ConversationTurn, got "
                f"{type(turn).__name__}"
            )
        driver = self._driver
        if driver is None:
            if self._config.strategy != "none":
                self._fire(self._config.on_turn_added, turn)
            return
        await driver.add_turn(self._key, _stored(turn))
        if isinstance(driver, TruncationMemory) and self._over_budget():
            # The driver keeps the newest turn even when it alone is over the budget;
            # PenguiFlow keeps the budget and drops it.
            await driver.clear(self._key)
        self._fire(self._config.on_turn_added, turn)

    async def get_llm_context(self) -> Mapping[str, Any]:
        """`{}` with strategy `none`; otherwise `{"conversation_memory": {"recent_turns":
        [...], "pending_turns": [...], "summary": "..."}}` (the last two only with
        `rolling_summary`, when there are any, and not while degraded)."""
        if self._config.strategy == "none":
            return {}
        if isinstance(self._driver, RollingSummaryMemory):
            await self._driver.snapshot(self._key)  # starts a retry that has come due
        return {"conversation_memory": self._payload()}

    def estimate_tokens(self) -> int:
        """The configured estimator's count of the memory's context, as JSON."""
        return self._estimator(_compact(self._payload()))

    async def flush(self) -> None:
        """Wait for the summary in progress and any now due, and for the callbacks fired so
        far. A retry still waiting out its backoff is not waited for: move the clock."""
        if isinstance(self._driver, RollingSummaryMemory):
            await self._driver.flush()
        while self._callbacks:
            await asyncio.wait(list(self._callbacks))

    async def aclose(self) -> None:
        """Cancel the summary in progress and pending callbacks (idempotent)."""
        if self._driver is not None:
            await self._driver.aclose()
        tasks = list(self._callbacks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- persistence and serialisation -------------------------------------------------------

    async def persist(self, store: Any, key: MemoryKey | str) -> None:
        """Save `to_dict()` through `store.save_memory_state`: under `key.as_string()` for a
        `MemoryKey`, under the string itself otherwise. A store without memory state is
        skipped, as in PenguiFlow."""
        if not hasattr(store, "save_memory_state"):
            return
        if isinstance(key, MemoryKey):
            await write_memory_state(store, key, self.to_dict())
        else:
            await store.save_memory_state(key, self.to_dict())

    async def hydrate(self, store: Any, key: MemoryKey | str) -> None:
        """Load what `persist()` saved (nothing saved: nothing changes)."""
        if not hasattr(store, "load_memory_state"):
            return
        if isinstance(key, MemoryKey):
            state = await read_memory_state(store, key)
        else:
            state = await store.load_memory_state(key)
        if state is not None:
            self.from_dict(state)

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-ready data, in PenguiFlow's format (`version` 1)."""
        state = self._slot.state or {}
        health = str(state.get("health", "healthy"))
        turns = [_turn_dict(t) for t in state.get("turns") or []]
        waiting = [_turn_dict(t) for t in state.get("pending") or []]
        # The driver keeps one list of turns awaiting a summary; PenguiFlow calls it the
        # backlog once summaries have failed for good.
        aside = health in ("degraded", "recovering")
        return {
            "version": STATE_VERSION,
            "health": health,
            "summary": str(state.get("summary") or ""),
            "turns": turns,
            "pending": [] if aside else waiting,
            "backlog": waiting if aside else [],
            "config_snapshot": self._config_snapshot(),
        }

    def from_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the state with one `to_dict()` wrote. Raises `ConfigurationError` (a
        `ValueError`) for another version or a malformed state, leaving the memory as it was.
        A summary running for the old state is discarded."""
        if not isinstance(state, Mapping):
            raise InvalidTypeError(f"from_dict() takes a mapping, got {type(state).__name__}")
        loaded = _load_state(state)
        if isinstance(self._driver, RollingSummaryMemory):
            self._slot.state = loaded
            self._driver.forget(self._key)
        elif isinstance(self._driver, TruncationMemory):
            self._slot.state = {"turns": loaded["turns"]}
            self._driver = self._new_driver()  # it reads the slot again on first use
        else:
            self._slot.state = loaded

    def get_artifact(self, ref: str) -> Any | None:
        """Hidden artifacts are not kept by this memory: always None, as in PenguiFlow."""
        return None

    # -- internals ---------------------------------------------------------------------------

    def _new_driver(self) -> TruncationMemory | RollingSummaryMemory | None:
        config, budget = self._config, self._config.budget
        total = budget.total_max_tokens or None
        if config.strategy == "none":
            return None
        if config.strategy == "truncation":
            if budget.full_zone_turns == 0:
                return None  # PenguiFlow keeps no turn at all
            return TruncationMemory(
                max_turns=budget.full_zone_turns,
                max_tokens=total,
                # Without a summary, truncate_summary can only drop turns too.
                overflow="error" if budget.overflow_policy == "error" else "truncate_oldest",
                state_store=self._slot,
                token_counter=lambda turns: self._count("", (), turns, "healthy"),
            )
        return RollingSummaryMemory(
            summarize=self._summarise,
            max_turns=budget.full_zone_turns,
            max_tokens=total,
            overflow=budget.overflow_policy,
            max_retries=config.retry_attempts,
            state_store=self._slot,
            summary_max_tokens=budget.summary_max_tokens,
            estimator=self._estimator,
            token_counter=self._count,
            backlog_limit=config.recovery_backlog_limit,
            retry_backoff_s=config.retry_backoff_base_s,
            recovery_interval_s=config.degraded_retry_interval_s,
            time_source=self._clock,
            listener=self._heard,
            penguiflow_semantics=True,
        )

    async def _summarise(self, previous: str, turns: list[StoredTurn]) -> str:
        assert self._summarizer is not None  # checked in __init__
        digest = self._config.include_trajectory_digest
        request = {
            "previous_summary": previous,
            "turns": [_llm_turn(t.user, t.assistant, t.metadata, digest) for t in turns],
        }
        try:
            response = await self._summarizer(request)
        finally:
            if self._on_background_change is not None:
                self._fire_after_summary()
        summary = response.get("summary") if isinstance(response, Mapping) else None
        if not isinstance(summary, str):
            raise InvalidTypeError(
                "the summarizer must return a mapping with a string 'summary', got "
                f"{response!r:.200}"
            )
        return summary

    def _fire_after_summary(self) -> None:
        # Deferred to a task that first waits for this summary's task to end, so the
        # owner sees the state the driver stores for it (success or failure).
        summary_task = asyncio.current_task()
        hook = self._on_background_change
        assert hook is not None

        async def after() -> None:
            if summary_task is not None:
                await asyncio.wait([summary_task])
            await hook()

        self._fire(after)

    def _payload(self) -> dict[str, Any]:
        state = self._slot.state or {}
        digest = self._config.include_trajectory_digest
        return _context(
            self._config.strategy,
            str(state.get("summary") or ""),
            [_llm_turn(**_parts(t), digest=digest) for t in state.get("pending") or []],
            [_llm_turn(**_parts(t), digest=digest) for t in state.get("turns") or []],
            state.get("health", "healthy"),
        )

    def _count(
        self,
        summary: str,
        pending: Sequence[StoredTurn],
        turns: Sequence[StoredTurn],
        health: Health,
    ) -> int:
        """The estimator's count of the context this state would give (PenguiFlow's measure:
        the JSON the model sees, digests included)."""
        digest = self._config.include_trajectory_digest
        context = _context(
            self._config.strategy,
            summary,
            [_llm_turn(t.user, t.assistant, t.metadata, digest) for t in pending],
            [_llm_turn(t.user, t.assistant, t.metadata, digest) for t in turns],
            health,
        )
        return self._estimator(_compact(context))

    def _over_budget(self) -> bool:
        total = self._config.budget.total_max_tokens
        return bool(total) and self.estimate_tokens() > total

    def _heard(self, key: MemoryKey, what: str, old: str, new: str) -> None:
        if what == "health":
            self._fire(self._config.on_health_changed, MemoryHealth(old), MemoryHealth(new))
        elif what == "summary":
            self._fire(self._config.on_summary_updated, old, new)

    def _fire(self, callback: Callable[..., Any] | None, *args: Any) -> None:
        """Run `callback(*args)` in the background: never blocks the memory, and a failure is
        logged, never raised. Kept until it ends (an unreferenced task may be collected)."""
        if callback is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(_call_quietly(callback, args))
        except RuntimeError:
            return  # no event loop: nobody to run it (PenguiFlow skips it too)
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    def _config_snapshot(self) -> dict[str, Any]:
        config, budget, isolation = self._config, self._config.budget, self._config.isolation
        return {
            "strategy": config.strategy,
            "budget": {
                "full_zone_turns": budget.full_zone_turns,
                "summary_max_tokens": budget.summary_max_tokens,
                "total_max_tokens": budget.total_max_tokens,
                "overflow_policy": budget.overflow_policy,
            },
            "isolation": {
                "tenant_key": isolation.tenant_key,
                "user_key": isolation.user_key,
                "session_key": isolation.session_key,
                "require_explicit_key": isolation.require_explicit_key,
            },
            "summarizer_model": config.summarizer_model,
            "include_trajectory_digest": config.include_trajectory_digest,
            "recovery_backlog_limit": config.recovery_backlog_limit,
            "retry_attempts": config.retry_attempts,
        }


async def _call_quietly(callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        name = getattr(callback, "__qualname__", type(callback).__name__)
        logger.warning("memory callback %s failed: %s", name, describe_exception(exc))


def _compact(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _context(
    strategy: str,
    summary: str,
    pending: list[dict[str, Any]],
    recent: list[dict[str, Any]],
    health: str,
) -> dict[str, Any]:
    """What `get_llm_context()` shows under `conversation_memory`: recent turns; with
    `rolling_summary` also the turns awaiting a summary and the summary, except while
    degraded (recent turns only) or recovering (the turns kept aside are being summarised)."""
    if strategy == "none":
        return {}
    shown: dict[str, Any] = {"recent_turns": recent}
    if strategy == "truncation" or health == "degraded":
        return shown
    if pending and health != "recovering":
        shown["pending_turns"] = pending
    if summary:
        shown["summary"] = summary
    return shown


# -- turns: PenguiFlow's dataclass, the drivers' model, and what the model is shown ----------


def _stored(turn: ConversationTurn) -> StoredTurn:
    metadata: dict[str, Any] = {}
    if turn.trajectory_digest is not None:
        metadata["trajectory_digest"] = _digest_dict(turn.trajectory_digest)
    if turn.artifacts_shown:
        metadata["artifacts_shown"] = dict(turn.artifacts_shown)
    if turn.artifacts_hidden_refs:
        metadata["artifacts_hidden_refs"] = list(turn.artifacts_hidden_refs)
    return StoredTurn(
        user=turn.user_message, assistant=turn.assistant_response, ts=turn.ts, metadata=metadata
    )


def _digest_dict(digest: TrajectoryDigest) -> dict[str, Any]:
    return {
        "tools_invoked": list(digest.tools_invoked),
        "observations_summary": digest.observations_summary,
        "reasoning_summary": digest.reasoning_summary,
        "artifacts_refs": list(digest.artifacts_refs),
    }


def _parts(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A driver's saved turn (`StoredTurn.model_dump()`) as `_llm_turn`'s arguments."""
    return {
        "user": str(stored.get("user", "")),
        "assistant": str(stored.get("assistant", "")),
        "metadata": stored.get("metadata") or {},
    }


def _llm_turn(
    user: str, assistant: str, metadata: Mapping[str, Any], digest: bool
) -> dict[str, Any]:
    shown: dict[str, Any] = {"user": user, "assistant": assistant}
    trajectory = metadata.get("trajectory_digest")
    if digest and isinstance(trajectory, Mapping):
        shown["trajectory_digest"] = dict(trajectory)
    return shown


def _turn_dict(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A driver's saved turn in PenguiFlow's `to_dict()` form."""
    metadata = stored.get("metadata") or {}
    trajectory = metadata.get("trajectory_digest")
    return {
        "user_message": str(stored.get("user", "")),
        "assistant_response": str(stored.get("assistant", "")),
        "trajectory_digest": dict(trajectory) if isinstance(trajectory, Mapping) else None,
        "artifacts_shown": dict(metadata.get("artifacts_shown") or {}),
        "artifacts_hidden_refs": list(metadata.get("artifacts_hidden_refs") or []),
        "ts": float(stored.get("ts") or 0.0),
    }


def _load_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """PenguiFlow's `to_dict()` format as the drivers' saved state, checked."""
    version = state.get("version")
    if version != STATE_VERSION:
        raise ConfigurationError(
            f"unsupported memory state version {version!r}: this memory reads version "
            f"{STATE_VERSION}, the format to_dict() writes; a state from a newer release "
            "needs that release"
        )
    health = state.get("health")
    if health not in {h.value for h in MemoryHealth}:
        raise ConfigurationError(
            f"invalid health {health!r} in memory state; expected one of "
            f"{', '.join(h.value for h in MemoryHealth)}"
        )
    lists = {name: state.get(name) or [] for name in ("turns", "pending", "backlog")}
    for name, value in lists.items():
        if not isinstance(value, list):
            raise ConfigurationError(
                f"memory state field {name!r} must be a list of turns, got {type(value).__name__}"
            )
    pending = [_stored_dict(t) for t in lists["backlog"]] + [
        _stored_dict(t) for t in lists["pending"]
    ]
    return {
        "summary": str(state.get("summary") or ""),
        "turns": [_stored_dict(t) for t in lists["turns"]],
        "pending": pending,
        "health": health,
        "failures": 0,
    }


def _stored_dict(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        raise ConfigurationError(f"a turn in memory state must be a mapping, got {payload!r:.80}")
    trajectory = payload.get("trajectory_digest")
    digest = None
    if trajectory is not None:
        if not isinstance(trajectory, Mapping):
            raise ConfigurationError(
                f"a turn's trajectory_digest must be a mapping or null, got {trajectory!r:.80}"
            )
        reasoning = trajectory.get("reasoning_summary")
        digest = TrajectoryDigest(
            tools_invoked=[str(t) for t in trajectory.get("tools_invoked") or []],
            observations_summary=str(trajectory.get("observations_summary") or ""),
            reasoning_summary=None if reasoning is None else str(reasoning),
            artifacts_refs=[str(r) for r in trajectory.get("artifacts_refs") or []],
        )
    turn = ConversationTurn(
        user_message=str(payload.get("user_message") or ""),
        assistant_response=str(payload.get("assistant_response") or ""),
        trajectory_digest=digest,
        artifacts_shown=dict(payload.get("artifacts_shown") or {}),
        artifacts_hidden_refs=[str(r) for r in payload.get("artifacts_hidden_refs") or []],
        ts=float(payload.get("ts") or 0.0),
    )
    return _stored(turn).model_dump()
