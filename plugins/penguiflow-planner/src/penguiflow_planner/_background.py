"""Background tasks: the configuration and shapes PenguiFlow 3.11's planner names.

Background work (a planner spawning sub-agents or tool jobs that report back later) belongs
to sessions, which come with their own package; the planner alone accepts
`background_tasks=None` or a config with `enabled=False`, and refuses `enabled=True` with an
error that says so (`_settings.check_unsupported`). The models are here so that PenguiFlow
programs that build them import and run unchanged.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from pydantic import BaseModel, Field

__all__ = ["BackgroundTaskHandle", "BackgroundTasksConfig", "TaskArgs"]

MergeStrategyName = Literal["HUMAN_GATED", "APPEND", "REPLACE"]


class BackgroundTaskHandle(BaseModel):
    """What a tool that runs in the background returns at once."""

    task_id: str
    status: str = "PENDING"
    message: str | None = None


class BackgroundTasksConfig(BaseModel):
    """How a planner may start background tasks (PenguiFlow's fields and defaults)."""

    enabled: bool = False
    include_prompt_guidance: bool = True
    allow_tool_background: bool = False
    default_mode: str = "subagent"
    default_merge_strategy: str = "HUMAN_GATED"
    context_depth: str = "full"
    propagate_on_cancel: str = "cascade"
    spawn_requires_confirmation: bool = False
    max_concurrent_tasks: int = 5
    max_tasks_per_session: int = 50
    task_timeout_s: int = 3600
    max_pending_steering: int = 2
    proactive_report_enabled: bool = False
    proactive_report_strategies: list[str] = Field(default_factory=lambda: ["APPEND", "REPLACE"])
    proactive_report_max_queued: int = 5
    proactive_report_timeout_s: float = 30.0
    proactive_report_max_hops: int = 2
    proactive_report_fallback_notification: bool = True
    default_group_merge_strategy: str = "APPEND"
    default_group_report: str = "all"
    group_timeout_s: float = 600.0
    group_partial_on_failure: bool = True
    max_tasks_per_group: int = 10
    auto_seal_groups_on_foreground_yield: bool = True
    retain_turn_timeout_s: float = 60.0
    background_continuation_max_hops: int = 2
    background_continuation_cooldown_s: float = 0.0


class TaskArgs(TypedDict, total=False):
    """The `args` of a `task.subagent` or `task.tool` action (sessions only)."""

    name: str
    query: str
    tool: str
    tool_args: dict[str, object]
    merge_strategy: MergeStrategyName
    group: str
    group_id: str
    group_sealed: bool
    group_report: Literal["all", "any", "none"]
    group_merge_strategy: MergeStrategyName
    retain_turn: bool
