"""How a served planner becomes the server's turns: one pipeline, and a task service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from penguiflow.errors import ConfigurationError

from ._auth import Principal
from ._host import ToolContextFactory

if TYPE_CHECKING:
    from ..manager import SessionManager
    from ..session import TaskPipeline

__all__ = ["planner_wiring"]


def planner_wiring(
    planner: Any, manager: SessionManager, tool_context: ToolContextFactory | None
) -> tuple[TaskPipeline, ToolContextFactory]:
    """The turn pipeline for `planner` and the tool context its sessions need.

    Every turn runs a fork of `planner`: forks share the model and stores but no per-run
    state, so concurrent sessions never corrupt each other (PenguiFlow's shared-instance
    bug). The `tasks.*` tools find the task service in each session's tool context."""
    from penguiflow_planner import ReactPlanner

    from ..planner import PlannerTaskPipeline
    from ..task_service import InProcessTaskService

    if not isinstance(planner, ReactPlanner):
        raise ConfigurationError(
            f"create_app(planner=...) needs a ReactPlanner, got {type(planner).__name__}; "
            "for another kind of turn pass turn_pipeline=<an async callable taking a TaskRuntime>"
        )
    service = InProcessTaskService(
        sessions=manager,
        planner_factory=planner.fork,
        # The planner keeps its BackgroundTasksConfig privately; the service only reads it.
        background_config=getattr(planner, "_background_tasks", None),
    )

    def context(principal: Principal, session_id: str) -> Mapping[str, Any]:
        extra = dict(tool_context(principal, session_id)) if tool_context is not None else {}
        return {"task_service": service, **extra}

    return PlannerTaskPipeline(planner_factory=planner.fork), context
