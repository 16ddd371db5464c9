"""ReactPlanner for PenguiFlow: a model drives typed tools in bounded, pausable steps.

The public API is PenguiFlow 3.11's `penguiflow.planner` (the kernel forwards that import path
here), plus what this planner adds: grouped budgets, pause owners, prompt templates, join
strategies by name, and the parsing helpers.

Names are loaded on first use: the planner's hook plugin (`penguiflow_planner.hooks`, loaded
with every flow's hooks) imports this package, and it must stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import lazy_names

if TYPE_CHECKING:
    from ._actions import JoinInjection, ParallelCall, ParallelJoin, PlannerAction
    from ._background import BackgroundTaskHandle, BackgroundTasksConfig
    from ._budgets import BudgetUsage, PlannerBudgets
    from ._error_recovery import ErrorRecoveryConfig, LLMErrorType
    from ._events import PlannerEvent, PlannerEventCallback
    from ._executor import PauseRequested
    from ._owners import Owner, OwnerMismatchError
    from ._parsing import ActionError, parse_action
    from ._planner import ReactPlanner
    from ._policies import ToolPolicy, ToolVisibilityPolicy
    from ._reflection import ReflectionConfig, ReflectionCriteria, ReflectionCritique
    from ._results import FinishReason, PlannerFinish, PlannerPause, PlannerPauseReason
    from ._steering import SteeringCancelled
    from ._tool_config import (
        ToolDirectoryConfig,
        ToolExamplesConfig,
        ToolGroupConfig,
        ToolHintsConfig,
        ToolSearchConfig,
    )
    from ._trajectory import BackgroundTaskResult, Trajectory, TrajectoryStep, TrajectorySummary
    from .context import AnyContext, ToolContext
    from .llm_context_hooks import LLMContextHook, LLMContextHookInput
    from .prompts import PromptTemplates

_HOMES: dict[str, str] = {
    **dict.fromkeys(
        ["JoinInjection", "ParallelCall", "ParallelJoin", "PlannerAction"], "._actions"
    ),
    **dict.fromkeys(["BackgroundTaskHandle", "BackgroundTasksConfig"], "._background"),
    **dict.fromkeys(["BudgetUsage", "PlannerBudgets"], "._budgets"),
    **dict.fromkeys(["ErrorRecoveryConfig", "LLMErrorType"], "._error_recovery"),
    **dict.fromkeys(["PlannerEvent", "PlannerEventCallback"], "._events"),
    **dict.fromkeys(["PauseRequested"], "._executor"),
    **dict.fromkeys(["Owner", "OwnerMismatchError"], "._owners"),
    **dict.fromkeys(["ActionError", "parse_action"], "._parsing"),
    **dict.fromkeys(["ReactPlanner"], "._planner"),
    **dict.fromkeys(["ToolPolicy", "ToolVisibilityPolicy"], "._policies"),
    **dict.fromkeys(
        ["ReflectionConfig", "ReflectionCriteria", "ReflectionCritique"], "._reflection"
    ),
    **dict.fromkeys(
        ["FinishReason", "PlannerFinish", "PlannerPause", "PlannerPauseReason"], "._results"
    ),
    **dict.fromkeys(["SteeringCancelled"], "._steering"),
    **dict.fromkeys(
        [
            "ToolDirectoryConfig",
            "ToolExamplesConfig",
            "ToolGroupConfig",
            "ToolHintsConfig",
            "ToolSearchConfig",
        ],
        "._tool_config",
    ),
    **dict.fromkeys(
        ["BackgroundTaskResult", "Trajectory", "TrajectoryStep", "TrajectorySummary"],
        "._trajectory",
    ),
    **dict.fromkeys(["AnyContext", "ToolContext"], ".context"),
    **dict.fromkeys(["LLMContextHook", "LLMContextHookInput"], ".llm_context_hooks"),
    **dict.fromkeys(["PromptTemplates"], ".prompts"),
}

#: PenguiFlow 3.11 planner names this planner does not offer, and what to use instead
_NOT_OFFERED: dict[str, str] = {
    "DSPyLLMClient": "pass any JSON LLM client as llm_client",
    **dict.fromkeys(
        [
            "SkillCapabilityContext",
            "SkillPackConfig",
            "SkillProposalConfig",
            "SkillProposalDraft",
            "SkillProposeRequest",
            "SkillProposeResponse",
            "SkillProvider",
            "SkillProviderFactory",
            "SkillsConfig",
            "SkillsDirectoryConfig",
        ],
        "skills are not part of penguiflow-planner",
    ),
}

__all__ = [
    "ActionError",
    "AnyContext",
    "BackgroundTaskHandle",
    "BackgroundTaskResult",
    "BackgroundTasksConfig",
    "BudgetUsage",
    "ErrorRecoveryConfig",
    "FinishReason",
    "JoinInjection",
    "LLMContextHook",
    "LLMContextHookInput",
    "LLMErrorType",
    "Owner",
    "OwnerMismatchError",
    "ParallelCall",
    "ParallelJoin",
    "PauseRequested",
    "PlannerAction",
    "PlannerBudgets",
    "PlannerEvent",
    "PlannerEventCallback",
    "PlannerFinish",
    "PlannerPause",
    "PlannerPauseReason",
    "PromptTemplates",
    "ReactPlanner",
    "ReflectionConfig",
    "ReflectionCriteria",
    "ReflectionCritique",
    "SteeringCancelled",
    "ToolContext",
    "ToolDirectoryConfig",
    "ToolExamplesConfig",
    "ToolGroupConfig",
    "ToolHintsConfig",
    "ToolPolicy",
    "ToolSearchConfig",
    "ToolVisibilityPolicy",
    "Trajectory",
    "TrajectoryStep",
    "TrajectorySummary",
    "parse_action",
]


_lazy_getattr, __dir__ = lazy_names(__name__, _HOMES, globals())


def __getattr__(name: str) -> Any:
    instead = _NOT_OFFERED.get(name)
    if instead is not None:
        # An ImportError (not an AttributeError, which `from ... import` would turn into a
        # message without this explanation).
        from penguiflow.errors import MissingPluginError

        raise MissingPluginError(
            f"{name} is a PenguiFlow 3.x planner name that penguiflow-planner does not offer: "
            f"{instead}",
            name=name,
        )
    return _lazy_getattr(name)
