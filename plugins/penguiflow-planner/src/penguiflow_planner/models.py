"""The planner's data models, at PenguiFlow 3.11's import path (`penguiflow.planner.models`).

Actions, endings, events, and the configuration models of the planner's features. Names load
on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names

if TYPE_CHECKING:
    from penguiflow.llm import JSONLLMClient

    from ._actions import (
        FinalResponseArgs,
        JoinInjection,
        ParallelCall,
        ParallelJoin,
        PlanArgs,
        PlanJoin,
        PlannerAction,
        PlanStep,
    )
    from ._background import BackgroundTaskHandle, BackgroundTasksConfig, TaskArgs
    from ._events import PlannerEvent, PlannerEventCallback
    from ._policies import ToolPolicy, ToolVisibilityPolicy
    from ._reflection import ReflectionConfig, ReflectionCriteria, ReflectionCritique
    from ._results import (
        ClarificationResponse,
        FinalPayload,
        FinishReason,
        PlannerFinish,
        PlannerPause,
        PlannerPauseReason,
        Source,
        SuggestedAction,
    )
    from ._tool_config import (
        ObservationGuardrailConfig,
        ToolDirectoryConfig,
        ToolExamplesConfig,
        ToolGroupConfig,
        ToolHintsConfig,
        ToolSearchConfig,
    )

_HOMES: dict[str, str] = {
    **dict.fromkeys(
        [
            "FinalResponseArgs",
            "JoinInjection",
            "ParallelCall",
            "ParallelJoin",
            "PlanArgs",
            "PlanJoin",
            "PlanStep",
            "PlannerAction",
        ],
        "._actions",
    ),
    **dict.fromkeys(["BackgroundTaskHandle", "BackgroundTasksConfig", "TaskArgs"], "._background"),
    **dict.fromkeys(["PlannerEvent", "PlannerEventCallback"], "._events"),
    **dict.fromkeys(["ToolPolicy", "ToolVisibilityPolicy"], "._policies"),
    **dict.fromkeys(
        ["ReflectionConfig", "ReflectionCriteria", "ReflectionCritique"], "._reflection"
    ),
    **dict.fromkeys(
        [
            "ClarificationResponse",
            "FinalPayload",
            "FinishReason",
            "PlannerFinish",
            "PlannerPause",
            "PlannerPauseReason",
            "Source",
            "SuggestedAction",
        ],
        "._results",
    ),
    **dict.fromkeys(
        [
            "ObservationGuardrailConfig",
            "ToolDirectoryConfig",
            "ToolExamplesConfig",
            "ToolGroupConfig",
            "ToolHintsConfig",
            "ToolSearchConfig",
        ],
        "._tool_config",
    ),
    "JSONLLMClient": "penguiflow.llm",
}

__all__ = [
    "BackgroundTaskHandle",
    "BackgroundTasksConfig",
    "ClarificationResponse",
    "FinalPayload",
    "FinalResponseArgs",
    "FinishReason",
    "JSONLLMClient",
    "JoinInjection",
    "ObservationGuardrailConfig",
    "ParallelCall",
    "ParallelJoin",
    "PlanArgs",
    "PlanJoin",
    "PlanStep",
    "PlannerAction",
    "PlannerEvent",
    "PlannerEventCallback",
    "PlannerFinish",
    "PlannerPause",
    "PlannerPauseReason",
    "ReflectionConfig",
    "ReflectionCriteria",
    "ReflectionCritique",
    "Source",
    "SuggestedAction",
    "TaskArgs",
    "ToolDirectoryConfig",
    "ToolExamplesConfig",
    "ToolGroupConfig",
    "ToolHintsConfig",
    "ToolPolicy",
    "ToolSearchConfig",
    "ToolVisibilityPolicy",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
