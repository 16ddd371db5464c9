"""The `tasks.*` tools: how a foreground planner starts and manages background tasks.

`build_task_tool_specs()` returns them as catalog entries (`NodeSpec`s); a planner built with
`BackgroundTasksConfig(enabled=True)` adds them itself. Each tool needs the run's
`tool_context["task_service"]` (a `TaskService`) and `tool_context["session_id"]`, and refuses
to run inside a sub-agent (`tool_context["is_subagent"]`): only the foreground manages tasks,
so a background task cannot spawn tasks without bound. Results are models with `ok` where
PenguiFlow has it (never `success`), and `applied_patch_count` for groups.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from penguiflow import ModelRegistry, Node
from penguiflow.catalog import NodeSpec, build_catalog, tool
from penguiflow.errors import ConfigurationError, PenguiFlowError

from .models import (
    ContextDepth,
    GroupReportStrategy,
    MergeStrategy,
    PropagateOnCancel,
    TaskDetails,
    TaskGroup,
    TaskSpawnResult,
    TaskStatus,
    TaskSummary,
)
from .task_service import TaskService

__all__ = [
    "SUBAGENT_FLAG_KEY",
    "TASK_SERVICE_KEY",
    "TaskToolError",
    "TasksSpawnArgs",
    "build_task_tool_specs",
]

TASK_SERVICE_KEY = "task_service"
SUBAGENT_FLAG_KEY = "is_subagent"
_HOPS_KEY = "proactive_hops_remaining"


class TaskToolError(PenguiFlowError, RuntimeError):
    """A `tasks.*` tool could not run; the message starts with PenguiFlow's error code
    (`task_service_unavailable`, `session_id_missing`, `task_not_found`, ...)."""


def _service(ctx: Any) -> tuple[TaskService, str]:
    tools = ctx.tool_context
    if bool(tools.get(SUBAGENT_FLAG_KEY)):
        raise TaskToolError(
            "subagent_task_management_disabled: only the foreground planner manages "
            "background tasks; a sub-agent answers its own query instead"
        )
    service = tools.get(TASK_SERVICE_KEY)
    if service is None:
        raise TaskToolError(
            "task_service_unavailable: put a TaskService (e.g. InProcessTaskService) in "
            "tool_context['task_service'] to use the tasks.* tools"
        )
    session_id = tools.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise TaskToolError(
            "session_id_missing: put the session's id in tool_context['session_id']"
        )
    return service, session_id


def _turn(ctx: Any) -> str | None:
    turn = ctx.tool_context.get("turn_id")
    return str(turn) if turn else None


def _hops(ctx: Any) -> int | None:
    value = ctx.tool_context.get(_HOPS_KEY)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


# -- arguments and results -------------------------------------------------------------------


class TasksSpawnArgs(BaseModel):
    """Start a background task: a sub-agent for `query`, or a job running one tool."""

    query: str | None = Field(default=None, min_length=1)
    mode: Literal["subagent", "job"] = "subagent"
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = None
    priority: int = 0
    merge_strategy: MergeStrategy = MergeStrategy.HUMAN_GATED
    propagate_on_cancel: PropagateOnCancel = "cascade"
    notify_on_complete: bool = True
    context_depth: ContextDepth = "full"
    task_id: str | None = None
    idempotency_key: str | None = None
    group: str | None = Field(
        default=None,
        description="Group name: joins this turn's open group of that name, or creates one.",
    )
    group_id: str | None = Field(default=None, description="Join exactly this group.")
    group_sealed: bool = Field(default=False, description="Seal the group after this task.")
    retain_turn: bool = Field(
        default=False,
        description="Wait for the task's group before answering (APPEND or REPLACE merge).",
    )
    group_merge_strategy: MergeStrategy | None = None
    group_report: GroupReportStrategy | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TasksSpawnArgs:
        if self.mode == "subagent" and not (self.query or "").strip():
            raise ConfigurationError("mode 'subagent' needs a query (what the sub-agent should do)")
        if self.mode == "job" and (not self.tool_name or not isinstance(self.tool_args, dict)):
            raise ConfigurationError("mode 'job' needs tool_name and tool_args (an object)")
        merge = self.group_merge_strategy or self.merge_strategy
        if self.retain_turn and merge == MergeStrategy.HUMAN_GATED:
            raise ConfigurationError(
                "retain_turn=true needs group_merge_strategy APPEND or REPLACE: HUMAN_GATED "
                "results wait for a person and cannot come back inline"
            )
        return self


class TasksListArgs(BaseModel):
    status: TaskStatus | None = None


class TasksListResult(BaseModel):
    tasks: list[TaskSummary] = Field(default_factory=list)


class TasksGetArgs(BaseModel):
    task_id: str
    include_result: bool = False


class TasksCancelArgs(BaseModel):
    task_id: str
    reason: str | None = None


class TasksCancelResult(BaseModel):
    ok: bool


class TasksPrioritizeArgs(BaseModel):
    task_id: str
    priority: int


class TasksPrioritizeResult(BaseModel):
    ok: bool


class TasksApplyPatchArgs(BaseModel):
    patch_id: str
    action: Literal["apply", "reject"] = "apply"
    strategy: MergeStrategy | None = None


class TasksApplyPatchResult(BaseModel):
    ok: bool
    action: Literal["apply", "reject"]


class TasksAcknowledgeBackgroundArgs(BaseModel):
    task_ids: list[str] = Field(description="Background task ids whose results you used.")


class TasksAcknowledgeBackgroundResult(BaseModel):
    acknowledged: list[str] = Field(default_factory=list)
    cleaned_up: int = 0


class TasksSealGroupArgs(BaseModel):
    group_id: str | None = None
    group: str | None = Field(default=None, description="The name of an open group.")


class TasksSealGroupResult(BaseModel):
    ok: bool
    group_id: str | None = None
    sealed_task_count: int = 0


class TasksCancelGroupArgs(BaseModel):
    group_id: str
    reason: str | None = None
    propagate_on_cancel: PropagateOnCancel = "cascade"


class TasksCancelGroupResult(BaseModel):
    ok: bool
    cancelled_task_count: int = 0


class TasksApplyGroupArgs(BaseModel):
    group_id: str
    action: Literal["apply", "reject"] = "apply"
    strategy: MergeStrategy | None = None


class TasksApplyGroupResult(BaseModel):
    ok: bool
    action: Literal["apply", "reject"]
    applied_patch_count: int = 0


class TasksListGroupsArgs(BaseModel):
    status: Literal["open", "sealed", "complete", "failed"] | None = None


class TasksListGroupsResult(BaseModel):
    groups: list[TaskGroup] = Field(default_factory=list)


class TasksGetGroupArgs(BaseModel):
    group_id: str | None = None
    group: str | None = None


# -- tools -----------------------------------------------------------------------------------

_TAGS = ["tasks", "background"]
_GROUP_TAGS = ["tasks", "background", "groups"]


@tool(
    desc="Start a background task (a sub-agent for a query, or a job running one tool); "
    "returns its task_id at once. Tasks given the same group report together.",
    tags=_TAGS,
    side_effects="stateful",
)
async def tasks_spawn(args: TasksSpawnArgs, ctx: Any) -> TaskSpawnResult:
    service, session_id = _service(ctx)
    hops = _hops(ctx)
    if hops is not None and hops <= 0:
        raise TaskToolError(
            "proactive_hops_exhausted: this turn may not start more background tasks"
        )
    parent = ctx.tool_context.get("task_id")
    common: dict[str, Any] = {
        "session_id": session_id,
        "parent_task_id": parent if isinstance(parent, str) else None,
        "priority": args.priority,
        "merge_strategy": args.merge_strategy,
        "propagate_on_cancel": args.propagate_on_cancel,
        "notify_on_complete": args.notify_on_complete,
        "task_id": args.task_id,
        "context_tool_context": {_HOPS_KEY: hops} if hops is not None else None,
        "group": args.group,
        "group_id": args.group_id,
        "group_sealed": args.group_sealed,
        "retain_turn": args.retain_turn,
        "group_merge_strategy": args.group_merge_strategy,
        "group_report": args.group_report,
        "turn_id": _turn(ctx),
    }
    if args.mode == "job":
        return await service.spawn_tool_job(
            tool_name=str(args.tool_name), tool_args=dict(args.tool_args or {}), **common
        )
    return await service.spawn(
        query=str(args.query),
        context_depth=args.context_depth,
        idempotency_key=args.idempotency_key,
        **common,
    )


@tool(desc="List the tasks of this session.", tags=_TAGS, side_effects="read")
async def tasks_list(args: TasksListArgs, ctx: Any) -> TasksListResult:
    service, session_id = _service(ctx)
    return TasksListResult(tasks=await service.list(session_id=session_id, status=args.status))


@tool(desc="Status, progress and result digest of one task.", tags=_TAGS, side_effects="read")
async def tasks_get(args: TasksGetArgs, ctx: Any) -> TaskDetails:
    service, session_id = _service(ctx)
    found = await service.get(
        session_id=session_id, task_id=args.task_id, include_result=args.include_result
    )
    if found is None:
        raise TaskToolError(
            f"task_not_found: no task {args.task_id!r} in this session; tasks.list shows them"
        )
    return found


@tool(desc="Cancel a task (and its cascading children).", tags=_TAGS, side_effects="stateful")
async def tasks_cancel(args: TasksCancelArgs, ctx: Any) -> TasksCancelResult:
    service, session_id = _service(ctx)
    ok = await service.cancel(session_id=session_id, task_id=args.task_id, reason=args.reason)
    return TasksCancelResult(ok=ok)


@tool(desc="Change a task's priority.", tags=_TAGS, side_effects="stateful")
async def tasks_prioritize(args: TasksPrioritizeArgs, ctx: Any) -> TasksPrioritizeResult:
    service, session_id = _service(ctx)
    ok = await service.prioritize(
        session_id=session_id, task_id=args.task_id, priority=args.priority
    )
    return TasksPrioritizeResult(ok=ok)


@tool(
    desc="Apply or reject a background task's pending result (HUMAN_GATED merges).",
    tags=_TAGS,
    side_effects="stateful",
)
async def tasks_apply_patch(args: TasksApplyPatchArgs, ctx: Any) -> TasksApplyPatchResult:
    service, session_id = _service(ctx)
    ok = await service.apply_patch(
        session_id=session_id, patch_id=args.patch_id, action=args.action, strategy=args.strategy
    )
    return TasksApplyPatchResult(ok=ok, action=args.action)


@tool(
    desc="Mark background results you have used, so they leave your context.",
    tags=_TAGS,
    side_effects="stateful",
)
async def tasks_acknowledge_background(
    args: TasksAcknowledgeBackgroundArgs, ctx: Any
) -> TasksAcknowledgeBackgroundResult:
    service, session_id = _service(ctx)
    cleaned = await service.acknowledge_background(
        session_id=session_id, task_ids=list(args.task_ids)
    )
    return TasksAcknowledgeBackgroundResult(acknowledged=list(args.task_ids), cleaned_up=cleaned)


def _group_named(args: TasksSealGroupArgs | TasksGetGroupArgs) -> None:
    if not args.group_id and not args.group:
        raise TaskToolError("group_required: give group_id, or group (the group's name)")


@tool(desc="Seal a task group: no more tasks join it.", tags=_GROUP_TAGS, side_effects="stateful")
async def tasks_seal_group(args: TasksSealGroupArgs, ctx: Any) -> TasksSealGroupResult:
    service, session_id = _service(ctx)
    _group_named(args)
    done = await service.seal_group(
        session_id=session_id, group_id=args.group_id, group_name=args.group, turn_id=_turn(ctx)
    )
    return TasksSealGroupResult(
        ok=bool(done.get("ok", False)),
        group_id=done.get("group_id"),
        sealed_task_count=int(done.get("sealed_task_count", 0)),
    )


@tool(desc="Cancel a task group and its tasks.", tags=_GROUP_TAGS, side_effects="stateful")
async def tasks_cancel_group(args: TasksCancelGroupArgs, ctx: Any) -> TasksCancelGroupResult:
    service, session_id = _service(ctx)
    done = await service.cancel_group(
        session_id=session_id,
        group_id=args.group_id,
        reason=args.reason,
        propagate_on_cancel=args.propagate_on_cancel,
    )
    return TasksCancelGroupResult(
        ok=bool(done.get("ok", False)),
        cancelled_task_count=int(done.get("cancelled_task_count", 0)),
    )


@tool(
    desc="Apply or reject every pending result of a finished task group at once.",
    tags=_GROUP_TAGS,
    side_effects="stateful",
)
async def tasks_apply_group(args: TasksApplyGroupArgs, ctx: Any) -> TasksApplyGroupResult:
    service, session_id = _service(ctx)
    done = await service.apply_group(
        session_id=session_id, group_id=args.group_id, action=args.action, strategy=args.strategy
    )
    return TasksApplyGroupResult(
        ok=bool(done.get("ok", False)),
        action=args.action,
        applied_patch_count=int(done.get("applied_patch_count", 0)),
    )


@tool(desc="List the task groups of this session.", tags=_GROUP_TAGS, side_effects="read")
async def tasks_list_groups(args: TasksListGroupsArgs, ctx: Any) -> TasksListGroupsResult:
    service, session_id = _service(ctx)
    groups = await service.list_groups(session_id=session_id, status=args.status)
    return TasksListGroupsResult(groups=groups)


@tool(desc="One task group, by group_id or by name.", tags=_GROUP_TAGS, side_effects="read")
async def tasks_get_group(args: TasksGetGroupArgs, ctx: Any) -> TaskGroup:
    service, session_id = _service(ctx)
    _group_named(args)
    found = await service.get_group(
        session_id=session_id, group_id=args.group_id, group_name=args.group, turn_id=_turn(ctx)
    )
    if found is None:
        raise TaskToolError(
            f"group_not_found: no group {args.group_id or args.group!r} in this session; "
            "tasks.list_groups shows them"
        )
    return found


_TOOLS: tuple[tuple[str, Any, type[BaseModel], type[BaseModel]], ...] = (
    ("tasks.spawn", tasks_spawn, TasksSpawnArgs, TaskSpawnResult),
    ("tasks.list", tasks_list, TasksListArgs, TasksListResult),
    ("tasks.get", tasks_get, TasksGetArgs, TaskDetails),
    ("tasks.cancel", tasks_cancel, TasksCancelArgs, TasksCancelResult),
    ("tasks.prioritize", tasks_prioritize, TasksPrioritizeArgs, TasksPrioritizeResult),
    ("tasks.apply_patch", tasks_apply_patch, TasksApplyPatchArgs, TasksApplyPatchResult),
    (
        "tasks.acknowledge_background",
        tasks_acknowledge_background,
        TasksAcknowledgeBackgroundArgs,
        TasksAcknowledgeBackgroundResult,
    ),
    ("tasks.seal_group", tasks_seal_group, TasksSealGroupArgs, TasksSealGroupResult),
    ("tasks.cancel_group", tasks_cancel_group, TasksCancelGroupArgs, TasksCancelGroupResult),
    ("tasks.apply_group", tasks_apply_group, TasksApplyGroupArgs, TasksApplyGroupResult),
    ("tasks.list_groups", tasks_list_groups, TasksListGroupsArgs, TasksListGroupsResult),
    ("tasks.get_group", tasks_get_group, TasksGetGroupArgs, TaskGroup),
)


def build_task_tool_specs() -> list[NodeSpec]:
    """The twelve `tasks.*` tools as catalog entries (new objects on each call)."""
    registry = ModelRegistry()
    nodes: list[Node] = []
    for name, func, args_model, out_model in _TOOLS:
        registry.register(name, args_model, out_model)
        nodes.append(Node(func, name=name))
    return build_catalog(nodes, registry)
