"""ReactPlanner for PenguiFlow: an LLM drives typed tools in bounded, pausable steps.

Names are loaded on first use: the planner's hook plugin (`penguiflow_planner.hooks`, loaded
with every flow's hooks) imports this package, and it must stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._actions import FinishReason, ParallelCall, PlannerAction, PlannerFinish, PlannerPause
    from ._budgets import BudgetUsage, PlannerBudgets
    from ._events import PlannerEvent
    from ._executor import PauseRequested, ToolContext
    from ._owners import Owner, OwnerMismatchError
    from ._parsing import ActionError, parse_action
    from ._planner import ReactPlanner
    from ._reflection import Critique, ReflectionConfig
    from ._trajectory import Trajectory, TrajectoryStep

__all__ = [
    "ActionError",
    "BudgetUsage",
    "Critique",
    "FinishReason",
    "Owner",
    "OwnerMismatchError",
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

_HOMES: dict[str, str] = {
    **dict.fromkeys(
        ["FinishReason", "ParallelCall", "PlannerAction", "PlannerFinish", "PlannerPause"],
        "_actions",
    ),
    **dict.fromkeys(["BudgetUsage", "PlannerBudgets"], "_budgets"),
    **dict.fromkeys(["PlannerEvent"], "_events"),
    **dict.fromkeys(["PauseRequested", "ToolContext"], "_executor"),
    **dict.fromkeys(["Owner", "OwnerMismatchError"], "_owners"),
    **dict.fromkeys(["ActionError", "parse_action"], "_parsing"),
    **dict.fromkeys(["ReactPlanner"], "_planner"),
    **dict.fromkeys(["Critique", "ReflectionConfig"], "_reflection"),
    **dict.fromkeys(["Trajectory", "TrajectoryStep"], "_trajectory"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'penguiflow_planner' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
