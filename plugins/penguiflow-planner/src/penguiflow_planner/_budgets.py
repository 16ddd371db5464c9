"""Budgets: how far a run may go. Each one, when spent, ends the run with its own reason."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from pydantic import BaseModel

from penguiflow.errors import ConfigurationError

from ._actions import FinishReason

__all__ = ["BudgetUsage", "PlannerBudgets"]


@dataclass(frozen=True, slots=True)
class PlannerBudgets:
    """`max_iters` model calls that choose an action; `hop_budget` tool calls (a parallel
    plan counts each call); `deadline_s` seconds of wall-clock time while running (paused
    time is not charged); `token_budget` model tokens; `cost_budget_usd` model cost."""

    max_iters: int = 8
    hop_budget: int | None = None
    deadline_s: float | None = None
    token_budget: int | None = None
    cost_budget_usd: float | None = None

    def __post_init__(self) -> None:
        if self.max_iters < 1:
            raise ConfigurationError(f"max_iters must be >= 1, got {self.max_iters}")
        for name in ("hop_budget", "deadline_s", "token_budget", "cost_budget_usd"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name} must be positive or None, got {value}")


class BudgetUsage(BaseModel):
    """What a run has used so far; saved with a pause and carried into the resume."""

    iterations: int = 0
    hops: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    #: seconds used before the current running stretch (earlier stretches, before pauses)
    elapsed_before_s: float = 0.0

    def model_post_init(self, context: object) -> None:
        self._started = time.monotonic()

    def restart_clock(self) -> None:
        self._started = time.monotonic()

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + (time.monotonic() - self._started)

    def freeze_clock(self) -> None:
        """Bank the running time (before a pause is saved)."""
        self.elapsed_before_s = self.elapsed_s()
        self._started = time.monotonic()

    def exhausted(self, budgets: PlannerBudgets) -> FinishReason | None:
        if self.iterations >= budgets.max_iters:
            return "max_iters"
        if budgets.deadline_s is not None and self.elapsed_s() >= budgets.deadline_s:
            return "deadline"
        if budgets.token_budget is not None and self.tokens >= budgets.token_budget:
            return "token_budget"
        if budgets.cost_budget_usd is not None and self.cost_usd >= budgets.cost_budget_usd:
            return "cost_budget"
        if budgets.hop_budget is not None and self.hops >= budgets.hop_budget:
            return "hop_budget"
        return None

    def hops_left(self, budgets: PlannerBudgets) -> int | None:
        return None if budgets.hop_budget is None else budgets.hop_budget - self.hops

    def deadline_left_s(self, budgets: PlannerBudgets) -> float:
        """Seconds of `deadline_s` left to the current running stretch (negative once it has
        passed); infinity without a deadline. Time banked before a pause counts, the pause
        itself does not."""
        if budgets.deadline_s is None:
            return math.inf
        return budgets.deadline_s - self.elapsed_s()
