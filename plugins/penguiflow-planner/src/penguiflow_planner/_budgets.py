"""Budgets: how far a run may go, and what it has used.

PenguiFlow's limits are the planner's keywords (`max_iters`, `hop_budget`, `deadline_s`); ours
group them with two more (`max_tokens`, `cost_budget_usd`) in `PlannerBudgets`, which
`ReactPlanner(budgets=...)` takes instead. The semantics are PenguiFlow's: `max_iters` bounds
the steps a run records (error and constraint steps included), `hop_budget` the tool calls (a
parallel plan counts each branch, and a join tool one more), `deadline_s` the wall-clock time
while running (paused time is not charged). A spent hop budget does not end the run at once:
the model is told, and may still answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, PrivateAttr

from penguiflow.errors import ConfigurationError

from ._results import FinishReason

__all__ = ["BudgetUsage", "PlannerBudgets"]


@dataclass(frozen=True, slots=True)
class PlannerBudgets:
    """`max_iters` steps; `hop_budget` tool calls; `deadline_s` seconds of running time;
    `max_tokens` model tokens (input and output, as clients report them); `cost_budget_usd`
    model cost (as clients report it). None: no limit."""

    max_iters: int = 8
    hop_budget: int | None = None
    deadline_s: float | None = None
    max_tokens: int | None = None
    cost_budget_usd: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_iters, int) or self.max_iters < 1:
            raise ConfigurationError(f"max_iters must be an int >= 1, got {self.max_iters!r}")
        if self.hop_budget is not None and (
            not isinstance(self.hop_budget, int) or self.hop_budget < 0
        ):
            raise ConfigurationError(
                f"hop_budget must be an int >= 0 or None, got {self.hop_budget!r}"
            )
        for name in ("deadline_s", "max_tokens", "cost_budget_usd"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"{name} must be a number or None, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"{name} must be positive and finite or None, got {value}")


class BudgetUsage(BaseModel):
    """What a run has used; saved with a pause and carried into the resume."""

    hops: int = 0
    llm_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    #: calls per purpose, for PenguiFlow's `metadata["cost"]`
    reflection_llm_calls: int = 0
    summarizer_llm_calls: int = 0
    #: seconds used before the current running stretch (earlier stretches, before pauses)
    elapsed_before_s: float = 0.0
    hop_exhausted: bool = False
    deadline_triggered: bool = False

    _clock: Callable[[], float] = PrivateAttr(default=time.monotonic)
    _started: float = PrivateAttr(default=0.0)

    def model_post_init(self, context: Any) -> None:
        self._started = self._clock()

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Measure running time with `clock` (the planner's `time_source`) from now on. The
        time since this object was made (or restored from a pause) is not run time, and
        was measured on another clock: it is not charged."""
        self._clock = clock
        self._started = clock()

    def restart_clock(self) -> None:
        self._started = self._clock()

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + (self._clock() - self._started)

    def freeze_clock(self) -> None:
        """Bank the running time (before a pause is saved)."""
        self.elapsed_before_s = self.elapsed_s()
        self._started = self._clock()

    def deadline_left_s(self, budgets: PlannerBudgets) -> float:
        """Seconds of `deadline_s` left to the current running stretch (negative once it has
        passed); infinity without a deadline."""
        if budgets.deadline_s is None:
            return math.inf
        return budgets.deadline_s - self.elapsed_s()

    def hops_left(self, budgets: PlannerBudgets) -> int | None:
        return None if budgets.hop_budget is None else budgets.hop_budget - self.hops

    def spent(self, budgets: PlannerBudgets) -> FinishReason | None:
        """The budget (ours) that ends the run now, if any: `deadline`, `max_tokens`
        (`token_budget` as a finish reason) or `cost_budget`. Steps and hops are checked
        where they are used."""
        if budgets.deadline_s is not None and self.elapsed_s() >= budgets.deadline_s:
            self.deadline_triggered = True
            return "deadline"
        if budgets.max_tokens is not None and self.tokens >= budgets.max_tokens:
            return "token_budget"
        if budgets.cost_budget_usd is not None and self.cost_usd >= budgets.cost_budget_usd:
            return "cost_budget"
        return None

    def cost_report(self) -> dict[str, Any]:
        """PenguiFlow's `metadata["cost"]`."""
        main = self.llm_calls - self.reflection_llm_calls - self.summarizer_llm_calls
        return {
            "total_cost_usd": round(self.cost_usd, 10),
            "main_llm_calls": max(main, 0),
            "reflection_llm_calls": self.reflection_llm_calls,
            "summarizer_llm_calls": self.summarizer_llm_calls,
        }

    def constraints_report(self, budgets: PlannerBudgets) -> dict[str, Any]:
        """PenguiFlow's `metadata["constraints"]` (the tracker's snapshot)."""
        remaining = deadline_at = None
        if budgets.deadline_s is not None:
            remaining = max(self.deadline_left_s(budgets), 0.0)
            # When the run started, on the planner's clock, moved on by the paused time.
            deadline_at = self._clock() - self.elapsed_s() + budgets.deadline_s
        return {
            "deadline_at": deadline_at,
            "deadline_remaining_s": remaining,
            "hop_budget": budgets.hop_budget,
            # PenguiFlow counts hops only against a hop budget (0 without one).
            "hops_used": self.hops if budgets.hop_budget is not None else 0,
            "deadline_triggered": self.deadline_triggered,
            "hop_exhausted": self.hop_exhausted,
        }
