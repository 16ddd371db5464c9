"""`penguiflow.planner`: PenguiFlow's planner import path, served by the planner plugin.

PenguiFlow 3.x shipped `ReactPlanner` inside `penguiflow`; here it lives in the
`penguiflow-planner` plugin (import package `penguiflow_planner`). With the plugin installed,
`from penguiflow.planner import ReactPlanner` gives `penguiflow_planner.ReactPlanner` itself,
and `penguiflow.planner.memory` (and `models`, `trajectory`, `context`, `llm_context_hooks`,
`catalog_extension`, `react`, `prompts`) is the plugin's module of that name, not a copy.
Without the plugin, importing this package raises `MissingPluginError` (an `ImportError`)
that says how to install it.

Each submodule here is a one-line file that swaps itself for the plugin's module while it is
being imported (`penguiflow._plugin_imports.alias_plugin_module`). Files rather than an import
hook on `sys.meta_path`: they need no global import-system state, every tool that lists or
type-checks modules sees them, and adding a path is adding a file.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

from .._plugin_imports import import_plugin_module as _import_plugin_module
from .._plugin_imports import plugin_attribute as _plugin_attribute

if TYPE_CHECKING:
    from typing import Any

_DISTRIBUTION = "penguiflow-planner"
_PLUGIN = _import_plugin_module(
    "penguiflow_planner", distribution=_DISTRIBUTION, wanted="penguiflow.planner"
)

#: The plugin modules reachable as `penguiflow.planner.<name>` (one file here each).
_SUBMODULES = (
    "catalog_extension",
    "context",
    "llm_context_hooks",
    "memory",
    "models",
    "prompts",
    "react",
    "trajectory",
)

#: PenguiFlow 3.11's `penguiflow.planner` names: one the plugin does not provide is an
#: ImportError that says so, rather than Python's bare "cannot import name".
_PENGUIFLOW_NAMES = frozenset(
    {
        "AnyContext", "BackgroundTaskHandle", "BackgroundTaskResult", "BackgroundTasksConfig",
        "DSPyLLMClient", "ErrorRecoveryConfig", "JoinInjection", "LLMContextHook",
        "LLMContextHookInput", "LLMErrorType", "ParallelCall", "ParallelJoin", "PlannerAction",
        "PlannerEvent", "PlannerEventCallback", "PlannerFinish", "PlannerPause",
        "ReactPlanner", "ReflectionConfig", "ReflectionCriteria", "ReflectionCritique",
        "SkillCapabilityContext", "SkillPackConfig", "SkillProposalConfig",
        "SkillProposalDraft", "SkillProposeRequest", "SkillProposeResponse", "SkillProvider",
        "SkillProviderFactory", "SkillsConfig", "SkillsDirectoryConfig", "ToolContext",
        "ToolDirectoryConfig", "ToolExamplesConfig", "ToolGroupConfig", "ToolHintsConfig",
        "ToolPolicy", "ToolSearchConfig", "ToolVisibilityPolicy", "Trajectory",
        "TrajectoryStep", "TrajectorySummary",
    }
)  # fmt: skip

__all__: list[str] = list(_PLUGIN.__all__)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in __all__ or name in _PENGUIFLOW_NAMES:
        value = _plugin_attribute(
            _PLUGIN, name, distribution=_DISTRIBUTION, wanted=f"{__name__}.{name}"
        )
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The plugin's names and the submodules, not this module's helpers.
    dunders = {name for name in globals() if name.startswith("__") and name.endswith("__")}
    return sorted({*dunders, *__all__, *_SUBMODULES})
