"""ReactPlanner for PenguiFlow: an LLM drives typed tools in bounded, pausable steps."""

from __future__ import annotations

from ._actions import FinishReason, ParallelCall, PlannerAction, PlannerFinish, PlannerPause
from ._budgets import BudgetUsage, PlannerBudgets
from ._executor import PauseRequested, ToolContext
from ._parsing import ActionError, parse_action
from ._planner import Critique, PlannerEvent, ReactPlanner, ReflectionConfig
from ._trajectory import Trajectory, TrajectoryStep

__all__ = [
    "ActionError",
    "BudgetUsage",
    "Critique",
    "FinishReason",
    "ParallelCall",
    "PauseRequested",
    "PlannerAction",
    "PlannerBudgets",
    "PlannerEvent",
    "PlannerFinish",
    "PlannerPause",
    "ReactPlanner",
    "ReflectionConfig",
    "ToolContext",
    "Trajectory",
    "TrajectoryStep",
    "parse_action",
]
