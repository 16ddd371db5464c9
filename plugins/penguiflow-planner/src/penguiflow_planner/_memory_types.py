"""PenguiFlow 3.11's short-term memory vocabulary: turns, budgets, isolation, configuration,
health and the protocols a memory implements. Field names, defaults and positional order are
PenguiFlow's; bad values raise `ConfigurationError` (a `ValueError`, as PenguiFlow raised)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol, runtime_checkable

from penguiflow.errors import ConfigurationError, InvalidTypeError

__all__ = [
    "ConversationTurn",
    "MemoryBudget",
    "MemoryHealth",
    "MemoryIsolation",
    "ShortTermMemory",
    "ShortTermMemoryArtifacts",
    "ShortTermMemoryConfig",
    "ShortTermMemoryPersistence",
    "ShortTermMemorySerializable",
    "TrajectoryDigest",
    "default_token_estimator",
]

OverflowPolicy = Literal["truncate_summary", "truncate_oldest", "error"]
StrategyName = Literal["truncation", "rolling_summary", "none"]

_OVERFLOW_POLICIES = ("truncate_summary", "truncate_oldest", "error")
_STRATEGIES = ("truncation", "rolling_summary", "none")


class MemoryHealth(str, Enum):
    """How background summaries are going: HEALTHY; RETRY after a failure (retried after a
    backoff); DEGRADED after the retries ran out (recent turns only, older ones kept aside);
    RECOVERING while a degraded memory tries to summarise what it kept aside."""

    HEALTHY = "healthy"
    RETRY = "retry"
    DEGRADED = "degraded"
    RECOVERING = "recovering"


@dataclass(slots=True)
class TrajectoryDigest:
    """What the planner did for a turn, in brief: the tools it used and what they returned."""

    tools_invoked: list[str]
    observations_summary: str
    reasoning_summary: str | None = None
    artifacts_refs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ConversationTurn:
    """One user message and the answer it got (PenguiFlow's field names; the kernel's
    `penguiflow.memory.ConversationTurn`, with `user`/`assistant`, is what drivers store)."""

    user_message: str
    assistant_response: str
    trajectory_digest: TrajectoryDigest | None = None
    artifacts_shown: dict[str, Any] = field(default_factory=dict)
    artifacts_hidden_refs: list[str] = field(default_factory=list)
    ts: float = 0.0


def _count(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{owner}.{name} must be an int, got {value!r}")
    if value < 0:
        raise ConfigurationError(f"{owner}.{name} must be >= 0, got {value}")


def _seconds(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{owner}.{name} must be a number of seconds, got {value!r}")
    if not value >= 0:  # also refuses NaN
        raise ConfigurationError(f"{owner}.{name} must be >= 0, got {value}")


@dataclass(slots=True)
class MemoryBudget:
    """Token economy: the last `full_zone_turns` turns verbatim, a summary of at most
    `summary_max_tokens`, everything within `total_max_tokens` (0: no limit), and what gives
    way when it does not fit (`overflow_policy`)."""

    full_zone_turns: int = 5
    summary_max_tokens: int = 1000
    total_max_tokens: int = 10000
    overflow_policy: OverflowPolicy = "truncate_oldest"

    def __post_init__(self) -> None:
        for name in ("full_zone_turns", "summary_max_tokens", "total_max_tokens"):
            _count("MemoryBudget", name, getattr(self, name))
        if self.total_max_tokens and self.summary_max_tokens > self.total_max_tokens:
            raise ConfigurationError(
                f"MemoryBudget.summary_max_tokens ({self.summary_max_tokens}) must be <= "
                f"total_max_tokens ({self.total_max_tokens}): the summary is part of the total"
            )
        if self.overflow_policy not in _OVERFLOW_POLICIES:
            raise ConfigurationError(
                f"MemoryBudget.overflow_policy must be one of {', '.join(_OVERFLOW_POLICIES)}; "
                f"got {self.overflow_policy!r}"
            )


@dataclass(slots=True)
class MemoryIsolation:
    """Where in `tool_context` a run's memory key is found (dot-paths such as
    `"auth.tenant"`), and whether a run without one has no memory (`require_explicit_key`,
    the default: fail closed) or a memory of its planner's own."""

    tenant_key: str = "tenant_id"
    user_key: str = "user_id"
    session_key: str = "session_id"
    require_explicit_key: bool = True

    def __post_init__(self) -> None:
        for name in ("tenant_key", "user_key", "session_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(
                    f"MemoryIsolation.{name} must be a non-empty string (a dot-path into "
                    f"tool_context), got {value!r}"
                )


def default_token_estimator(text: str) -> int:
    """PenguiFlow's estimate: a quarter of the characters, plus one (never 0)."""
    return len(text) // 4 + 1


@dataclass(slots=True)
class ShortTermMemoryConfig:
    """Opt-in short-term memory for `ReactPlanner(short_term_memory=...)`.

    `strategy` is `none` (the default), `truncation` (the kernel's `truncation` driver) or
    `rolling_summary` (this plugin's driver); retries and recovery are timed by the planner's
    `time_source`. Callbacks may be async or plain functions; they run in the background and a
    failing one is logged, never raised."""

    strategy: StrategyName = "none"
    budget: MemoryBudget = field(default_factory=MemoryBudget)
    isolation: MemoryIsolation = field(default_factory=MemoryIsolation)
    summarizer_model: str | None = None
    include_trajectory_digest: bool = True
    recovery_backlog_limit: int = 20
    retry_attempts: int = 3
    retry_backoff_base_s: float = 2.0
    degraded_retry_interval_s: float = 30.0
    token_estimator: Callable[[str], int] | None = None
    on_turn_added: Callable[[ConversationTurn], Awaitable[None]] | None = None
    on_summary_updated: Callable[[str, str], Awaitable[None]] | None = None
    on_health_changed: Callable[[MemoryHealth, MemoryHealth], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ConfigurationError(
                f"ShortTermMemoryConfig.strategy must be one of {', '.join(_STRATEGIES)}; got "
                f"{self.strategy!r} (a memory strategy driver of another name can be given to "
                "the planner by name: short_term_memory='<driver name>')"
            )
        if not isinstance(self.budget, MemoryBudget):
            raise InvalidTypeError(
                f"ShortTermMemoryConfig.budget must be a MemoryBudget, got {self.budget!r}"
            )
        if not isinstance(self.isolation, MemoryIsolation):
            raise InvalidTypeError(
                f"ShortTermMemoryConfig.isolation must be a MemoryIsolation, got {self.isolation!r}"
            )
        _count("ShortTermMemoryConfig", "recovery_backlog_limit", self.recovery_backlog_limit)
        _count("ShortTermMemoryConfig", "retry_attempts", self.retry_attempts)
        _seconds("ShortTermMemoryConfig", "retry_backoff_base_s", self.retry_backoff_base_s)
        _seconds(
            "ShortTermMemoryConfig", "degraded_retry_interval_s", self.degraded_retry_interval_s
        )
        for name in ("token_estimator", "on_turn_added", "on_summary_updated"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise InvalidTypeError(
                    f"ShortTermMemoryConfig.{name} must be callable or None, got {value!r}"
                )
        if self.on_health_changed is not None and not callable(self.on_health_changed):
            raise InvalidTypeError(
                "ShortTermMemoryConfig.on_health_changed must be callable or None, got "
                f"{self.on_health_changed!r}"
            )


# PenguiFlow's protocols, runtime-checkable here so the planner can tell a memory object from
# one of our `MemoryStrategy` drivers (which take a key in every call).


@runtime_checkable
class ShortTermMemory(Protocol):
    """A conversation's memory: what a custom `short_term_memory=` object implements."""

    @property
    def health(self) -> MemoryHealth: ...

    async def add_turn(self, turn: ConversationTurn) -> None: ...

    async def get_llm_context(self) -> Mapping[str, Any]: ...

    def estimate_tokens(self) -> int: ...

    async def flush(self) -> None: ...


@runtime_checkable
class ShortTermMemoryPersistence(Protocol):
    """Optional: save to and load from a store with `save_memory_state`/`load_memory_state`."""

    async def persist(self, store: Any, key: str) -> None: ...

    async def hydrate(self, store: Any, key: str) -> None: ...


@runtime_checkable
class ShortTermMemorySerializable(Protocol):
    """Optional: the state as a JSON-ready dict and back."""

    def to_dict(self) -> dict[str, Any]: ...

    def from_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class ShortTermMemoryArtifacts(Protocol):
    """Optional: artifacts kept out of the prompt, by reference."""

    def get_artifact(self, ref: str) -> Any | None: ...
