"""The service behind the `tasks.*` tools: `TaskService` and `InProcessTaskService`.

The tools (`task_tools`) speak to a `TaskService`, never to a session directly, so that a
deployment can put background work on a queue, a scheduler or another process by supplying
its own service. `InProcessTaskService` runs the tasks in this process, on the sessions of a
`SessionManager`, each task a `PlannerTaskPipeline` over a planner from its factory.

Before a spawn, a `SpawnGuard` may refuse it (quotas, costs, tenants); a refusal raises
`SpawnDeniedError` with the guard's reason. An `idempotency_key` (per session) or an explicit
`task_id` makes a repeated spawn return the task it already started.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from penguiflow.errors import ConfigurationError, PenguiFlowError

from .models import (
    ContextDepth,
    GroupCompletionResult,
    GroupReportStrategy,
    GroupStatus,
    MergeStrategy,
    PropagateOnCancel,
    SpawnMode,
    TaskContextSnapshot,
    TaskDetails,
    TaskGroup,
    TaskSpawnResult,
    TaskStatus,
    TaskSummary,
    TaskType,
)
from .planner import DIGEST_CHARS, PlannerFactory, PlannerTaskPipeline, answer_text

__all__ = [
    "ContextDepth",
    "InProcessTaskService",
    "NoOpSpawnGuard",
    "SpawnDecision",
    "SpawnDeniedError",
    "SpawnGuard",
    "SpawnMode",
    "SpawnRequest",
    "TaskDetails",
    "TaskService",
    "TaskSpawnResult",
    "TaskSummary",
]

ToolJobFactory = Callable[[str, Any], Any]
"""Builds the pipeline of a tool job from the tool's name and arguments."""


class SpawnDeniedError(PenguiFlowError, RuntimeError):
    """A spawn was refused: by the spawn guard (its reason says why), or because the service
    cannot run that kind of task."""


class SpawnRequest(BaseModel):
    """What a `SpawnGuard` decides on."""

    session_id: str
    parent_task_id: str | None = None
    mode: SpawnMode = "subagent"
    query: str | None = None
    tool_name: str | None = None
    priority: int = 0
    merge_strategy: MergeStrategy = MergeStrategy.HUMAN_GATED


class SpawnDecision(BaseModel):
    """A guard's answer: `allowed`, and when not, the `reason` given to the caller."""

    allowed: bool = True
    reason: str | None = None
    estimated_cost: int | None = None


@runtime_checkable
class SpawnGuard(Protocol):
    """Decides, before each spawn, whether it may happen."""

    async def decide(self, request: SpawnRequest) -> SpawnDecision: ...


class NoOpSpawnGuard:
    """Allows every spawn (the default guard)."""

    async def decide(self, request: SpawnRequest) -> SpawnDecision:
        return SpawnDecision(allowed=True)


class TaskService(Protocol):
    """Background task orchestration for the `tasks.*` tools (PenguiFlow 3.11's contract).

    Group methods return dicts with `ok` (and `error` when not ok); `get` and `get_group`
    return None for an unknown id."""

    async def spawn(
        self,
        *,
        session_id: str,
        query: str,
        parent_task_id: str | None = None,
        priority: int = 0,
        merge_strategy: MergeStrategy = MergeStrategy.HUMAN_GATED,
        propagate_on_cancel: PropagateOnCancel = "cascade",
        notify_on_complete: bool = True,
        context_depth: ContextDepth = "full",
        task_id: str | None = None,
        idempotency_key: str | None = None,
        context_tool_context: dict[str, Any] | None = None,
        group: str | None = None,
        group_id: str | None = None,
        group_sealed: bool = False,
        retain_turn: bool = False,
        group_merge_strategy: MergeStrategy | None = None,
        group_report: GroupReportStrategy | None = None,
        turn_id: str | None = None,
    ) -> TaskSpawnResult: ...

    async def spawn_tool_job(
        self,
        *,
        session_id: str,
        tool_name: str,
        tool_args: Any,
        parent_task_id: str | None = None,
        priority: int = 0,
        merge_strategy: MergeStrategy = MergeStrategy.HUMAN_GATED,
        propagate_on_cancel: PropagateOnCancel = "cascade",
        notify_on_complete: bool = True,
        task_id: str | None = None,
        context_tool_context: dict[str, Any] | None = None,
        group: str | None = None,
        group_id: str | None = None,
        group_sealed: bool = False,
        retain_turn: bool = False,
        group_merge_strategy: MergeStrategy | None = None,
        group_report: GroupReportStrategy | None = None,
        turn_id: str | None = None,
    ) -> TaskSpawnResult: ...

    async def list(
        self, *, session_id: str, status: TaskStatus | None = None
    ) -> builtins.list[TaskSummary]: ...

    async def get(
        self, *, session_id: str, task_id: str, include_result: bool = False
    ) -> TaskDetails | None: ...

    async def cancel(self, *, session_id: str, task_id: str, reason: str | None = None) -> bool: ...

    async def prioritize(self, *, session_id: str, task_id: str, priority: int) -> bool: ...

    async def apply_patch(
        self,
        *,
        session_id: str,
        patch_id: str,
        action: str,
        strategy: MergeStrategy | None = None,
    ) -> bool: ...

    async def acknowledge_background(
        self, *, session_id: str, task_ids: builtins.list[str]
    ) -> int: ...

    async def seal_group(
        self,
        *,
        session_id: str,
        group_id: str | None = None,
        group_name: str | None = None,
        turn_id: str | None = None,
    ) -> dict[str, Any]: ...

    async def cancel_group(
        self,
        *,
        session_id: str,
        group_id: str,
        reason: str | None = None,
        propagate_on_cancel: PropagateOnCancel = "cascade",
    ) -> dict[str, Any]: ...

    async def apply_group(
        self,
        *,
        session_id: str,
        group_id: str,
        action: str = "apply",
        strategy: MergeStrategy | None = None,
    ) -> dict[str, Any]: ...

    async def list_groups(
        self, *, session_id: str, status: GroupStatus | None = None
    ) -> builtins.list[TaskGroup]: ...

    async def get_group(
        self,
        *,
        session_id: str,
        group_id: str | None = None,
        group_name: str | None = None,
        turn_id: str | None = None,
    ) -> TaskGroup | None: ...


def _json_only(value: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON copy of `value` without the entries that are not JSON (a background task's
    snapshot is stored and may outlive the objects of the foreground's context)."""
    kept: dict[str, Any] = {}
    for key, item in value.items():
        try:
            kept[str(key)] = json.loads(json.dumps(item, allow_nan=False))
        except (TypeError, ValueError):
            continue
    return kept


def _digest(result: Any) -> list[str]:
    if result is None:
        return []
    patch = getattr(result, "context_patch", None)
    if patch is not None and getattr(patch, "digest", None):
        return [text[:DIGEST_CHARS] for text in patch.digest]
    payload = getattr(result, "payload", result)
    text = answer_text(payload)
    return [(text if text is not None else str(payload))[:DIGEST_CHARS]]


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


class InProcessTaskService:
    """Runs background tasks in this process, on the sessions of `sessions` (a
    `SessionManager`).

    `planner_factory` builds the planner of a sub-agent task (`subagent_planner_factory`
    overrides it for sub-agents); `tool_job_factory(tool_name, tool_args)` builds the
    pipeline of a tool job; without it tool jobs are refused. `background_config` (the
    planner's `BackgroundTasksConfig`) gives `retain_turn_timeout_s` and the session
    defaults."""

    def __init__(
        self,
        *,
        sessions: Any,
        planner_factory: PlannerFactory | None,
        subagent_planner_factory: PlannerFactory | None = None,
        tool_job_factory: ToolJobFactory | None = None,
        spawn_guard: SpawnGuard | None = None,
        background_config: Any = None,
    ) -> None:
        self._sessions = sessions
        self._subagent_factory = subagent_planner_factory or planner_factory
        self._tool_job_factory = tool_job_factory
        self._guard: SpawnGuard = spawn_guard or NoOpSpawnGuard()
        self._config = background_config
        #: (session_id, idempotency_key) -> task_id; the lock makes check-and-spawn atomic
        self._idempotency: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()

    # -- sessions ------------------------------------------------------------------------------

    async def _session(self, session_id: str) -> Any:
        if not isinstance(session_id, str) or not session_id:
            raise ConfigurationError(
                f"session_id must be a non-empty str, got {session_id!r}; the tasks.* tools "
                "read it from tool_context['session_id']"
            )
        session = await self._sessions.get_or_create(session_id)
        configure = getattr(session, "configure_background_tasks", None)
        if self._config is not None and callable(configure):
            configure(self._config)
        return session

    def _retain_timeout(self, session: Any) -> float | None:
        config = self._config
        getter = getattr(session, "get_background_task_config", None)
        if config is None and callable(getter):
            config = getter()
        raw = float(getattr(config, "retain_turn_timeout_s", 60.0) if config else 60.0)
        return raw if raw > 0 else None

    # -- spawning ------------------------------------------------------------------------------

    async def _guarded(self, request: SpawnRequest) -> None:
        decision = await self._guard.decide(request)
        if not decision.allowed:
            raise SpawnDeniedError(
                f"the spawn guard refused a {request.mode} task in session "
                f"{request.session_id!r}: {decision.reason or 'no reason given'}"
            )

    async def _existing(
        self, session: Any, session_id: str, task_id: str | None, key: str | None
    ) -> TaskSpawnResult | None:
        known = self._idempotency.get((session_id, key)) if key is not None else None
        for candidate in (known, task_id):
            if candidate is None:
                continue
            task = await session.get_task(candidate)
            if task is not None:
                return TaskSpawnResult(task_id=candidate, session_id=session_id, status=task.status)
        return None

    def _snapshot(
        self,
        session: Any,
        *,
        session_id: str,
        task_id: str | None,
        parent_task_id: str | None,
        reason: str,
        query: str | None,
        depth: str,
        extra_tools: Mapping[str, Any] | None,
        propagate_on_cancel: PropagateOnCancel,
        notify_on_complete: bool,
    ) -> TaskContextSnapshot | None:
        if depth == "full" and not extra_tools:
            return None  # the session snapshots its own context (deep-copied for background)
        llm_context, tool_context = session.get_context()
        llm = dict(llm_context or {})
        if depth == "none":
            llm = {}
        elif depth == "summary":
            llm = {"summary": llm.get("summary") or llm.get("conversation_summary") or ""}
        tools = {**dict(tool_context or {}), **dict(extra_tools or {})}
        return TaskContextSnapshot(
            session_id=session_id,
            task_id=task_id or "pending",
            spawned_from_task_id=parent_task_id or "foreground",
            spawn_reason=reason,
            query=query,
            propagate_on_cancel=propagate_on_cancel,
            notify_on_complete=notify_on_complete,
            llm_context=_json_only(llm),
            tool_context=_json_only(tools),
            context_version=getattr(session, "context_version", None),
            context_hash=getattr(session, "context_hash", None),
        )

    async def _group(
        self,
        session: Any,
        *,
        group: str | None,
        group_id: str | None,
        turn_id: str | None,
        merge: MergeStrategy | None,
        report: GroupReportStrategy | None,
        retain_turn: bool,
    ) -> TaskGroup | None:
        if not group and not group_id:
            return None
        resolved: TaskGroup = await session.resolve_or_create_group(
            group_name=group,
            group_id=group_id,
            turn_id=turn_id,
            merge_strategy=merge,
            report_strategy=report,
            retain_turn=retain_turn,
        )
        return resolved

    async def _start(
        self,
        session: Any,
        pipeline: Any,
        *,
        session_id: str,
        key: str | None,
        group: TaskGroup | None,
        group_sealed: bool,
        retain_turn: bool,
        spawn_kwargs: dict[str, Any],
    ) -> tuple[str, TaskGroup | None]:
        created: str = await session.spawn_task(
            pipeline,
            task_type=TaskType.BACKGROUND,
            group_id=group.group_id if group else None,
            **spawn_kwargs,
        )
        if key is not None:
            self._idempotency[(session_id, key)] = created
        if group is None:
            return created, None
        await session.add_task_to_group(group.group_id, created)
        # A retained turn waits for the group, so the group must be closed to new tasks.
        if group_sealed or retain_turn:
            current = await session.get_group(group_id=group.group_id)
            if current is not None and current.status == "open":
                await session.seal_group(group.group_id)
        return created, (await session.get_group(group_id=group.group_id)) or group

    async def _retain(
        self, session: Any, group: TaskGroup | None, retain_turn: bool
    ) -> tuple[bool, GroupCompletionResult | None]:
        """Wait (at most `retain_turn_timeout_s`) for a sealed, auto-merged group, so the
        foreground gets its results inline. HUMAN_GATED results need a person first: no wait.
        On timeout the results arrive later as background results."""
        if not retain_turn or group is None or group.status != "sealed":
            return False, None
        if group.merge_strategy == MergeStrategy.HUMAN_GATED:
            return False, None
        finished, timed_out = await session.wait_for_group_completion(
            group.group_id, timeout_s=self._retain_timeout(session)
        )
        if finished is None:
            return True, None
        results = await session.get_group_results(group.group_id)
        completion = GroupCompletionResult(
            group_id=finished.group_id,
            group_name=finished.name,
            status=finished.status,
            task_count=len(finished.task_ids),
            completed_task_ids=list(finished.completed_task_ids),
            failed_task_ids=list(finished.failed_task_ids),
            results=list(results or []),
            timed_out=bool(timed_out),
        )
        if not timed_out:
            # Delivered inline: they must not come back as pending background results.
            await session.mark_background_consumed(task_ids=list(finished.task_ids))
        else:
            self._continue_later(session, finished.group_id)
        return True, completion

    def _continue_later(self, session: Any, group_id: str) -> None:
        """After a retained turn timed out, the session keeps waiting (bounded hops) so
        that the group's results are still reported."""
        schedule = getattr(session, "schedule_group_continuation", None)
        if not callable(schedule):
            return
        config = self._config
        schedule(
            group_id=group_id,
            timeout_s=self._retain_timeout(session),
            max_hops=int(getattr(config, "background_continuation_max_hops", 2) or 0),
            cooldown_s=float(getattr(config, "background_continuation_cooldown_s", 0.0) or 0.0),
        )

    async def _finish_spawn(
        self,
        session: Any,
        session_id: str,
        created: str,
        group: TaskGroup | None,
        retain_turn: bool,
    ) -> TaskSpawnResult:
        retained, completion = await self._retain(session, group, retain_turn)
        task = await session.get_task(created)
        return TaskSpawnResult(
            task_id=created,
            session_id=session_id,
            status=task.status if task is not None else TaskStatus.PENDING,
            group_id=group.group_id if group else None,
            group=group.name if group else None,
            retained=retained,
            group_completion=completion,
        )

    async def spawn(
        self,
        *,
        session_id: str,
        query: str,
        parent_task_id: str | None = None,
        priority: int = 0,
        merge_strategy: MergeStrategy = MergeStrategy.HUMAN_GATED,
        propagate_on_cancel: PropagateOnCancel = "cascade",
        notify_on_complete: bool = True,
        context_depth: ContextDepth = "full",
        task_id: str | None = None,
        idempotency_key: str | None = None,
        context_tool_context: dict[str, Any] | None = None,
        group: str | None = None,
        group_id: str | None = None,
        group_sealed: bool = False,
        retain_turn: bool = False,
        group_merge_strategy: MergeStrategy | None = None,
        group_report: GroupReportStrategy | None = None,
        turn_id: str | None = None,
    ) -> TaskSpawnResult:
        """Start a background sub-agent answering `query`; see `TaskService`."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigurationError("spawn(query=...) needs a non-empty question for the task")
        _check_choice("context_depth", context_depth, ("full", "summary", "none"))
        _check_choice("propagate_on_cancel", propagate_on_cancel, ("cascade", "isolate"))
        factory = self._subagent_factory
        if factory is None:
            raise SpawnDeniedError(
                "this task service has no planner for sub-agents; give InProcessTaskService "
                "planner_factory= (for example planner.fork)"
            )
        return await self._spawn_task(
            SpawnRequest(
                session_id=session_id,
                parent_task_id=parent_task_id,
                mode="subagent",
                query=query,
                priority=priority,
                merge_strategy=merge_strategy,
            ),
            lambda: PlannerTaskPipeline(planner_factory=factory),
            reason="tasks.spawn",
            description=query,
            depth=context_depth,
            key=idempotency_key,
            task_id=task_id,
            context_tool_context=context_tool_context,
            propagate_on_cancel=propagate_on_cancel,
            notify_on_complete=notify_on_complete,
            group=group,
            group_id=group_id,
            group_sealed=group_sealed,
            retain_turn=retain_turn,
            group_merge_strategy=group_merge_strategy,
            group_report=group_report,
            turn_id=turn_id,
        )

    async def spawn_tool_job(
        self,
        *,
        session_id: str,
        tool_name: str,
        tool_args: Any,
        parent_task_id: str | None = None,
        priority: int = 0,
        merge_strategy: MergeStrategy = MergeStrategy.HUMAN_GATED,
        propagate_on_cancel: PropagateOnCancel = "cascade",
        notify_on_complete: bool = True,
        task_id: str | None = None,
        context_tool_context: dict[str, Any] | None = None,
        group: str | None = None,
        group_id: str | None = None,
        group_sealed: bool = False,
        retain_turn: bool = False,
        group_merge_strategy: MergeStrategy | None = None,
        group_report: GroupReportStrategy | None = None,
        turn_id: str | None = None,
    ) -> TaskSpawnResult:
        """Start a background job running one tool call; see `TaskService`."""
        if self._tool_job_factory is None:
            raise SpawnDeniedError(
                f"this task service cannot run tool {tool_name!r} as a job; give "
                "InProcessTaskService tool_job_factory=(tool_name, tool_args) -> pipeline"
            )
        job_factory = self._tool_job_factory
        return await self._spawn_task(
            SpawnRequest(
                session_id=session_id,
                parent_task_id=parent_task_id,
                mode="job",
                tool_name=tool_name,
                priority=priority,
                merge_strategy=merge_strategy,
            ),
            lambda: job_factory(tool_name, tool_args),
            reason=f"tool:{tool_name}",
            description=f"{tool_name} (background)",
            depth="full",
            key=None,
            task_id=task_id,
            context_tool_context=context_tool_context,
            propagate_on_cancel=propagate_on_cancel,
            notify_on_complete=notify_on_complete,
            group=group,
            group_id=group_id,
            group_sealed=group_sealed,
            retain_turn=retain_turn,
            group_merge_strategy=group_merge_strategy,
            group_report=group_report,
            turn_id=turn_id,
        )

    async def _spawn_task(
        self,
        request: SpawnRequest,
        pipeline: Callable[[], Any],
        *,
        reason: str,
        description: str,
        depth: ContextDepth,
        key: str | None,
        task_id: str | None,
        context_tool_context: dict[str, Any] | None,
        propagate_on_cancel: PropagateOnCancel,
        notify_on_complete: bool,
        group: str | None,
        group_id: str | None,
        group_sealed: bool,
        retain_turn: bool,
        group_merge_strategy: MergeStrategy | None,
        group_report: GroupReportStrategy | None,
        turn_id: str | None,
    ) -> TaskSpawnResult:
        """What `spawn` and `spawn_tool_job` share once their own checks passed: the spawn
        guard, the idempotency key, the group, the context snapshot, the start and the result.
        `pipeline` is built only when a task is really started (not for a repeated key)."""
        await self._guarded(request)
        session_id = request.session_id
        session = await self._session(session_id)
        async with self._lock:
            existing = await self._existing(session, session_id, task_id, key)
            if existing is not None:
                return existing
            resolved = await self._group(
                session,
                group=group,
                group_id=group_id,
                turn_id=turn_id,
                merge=group_merge_strategy,
                report=group_report,
                retain_turn=retain_turn,
            )
            snapshot = self._snapshot(
                session,
                session_id=session_id,
                task_id=task_id,
                parent_task_id=request.parent_task_id,
                reason=reason,
                query=request.query,
                depth=depth,
                extra_tools=context_tool_context,
                propagate_on_cancel=propagate_on_cancel,
                notify_on_complete=notify_on_complete,
            )
            created, resolved = await self._start(
                session,
                pipeline(),
                session_id=session_id,
                key=key,
                group=resolved,
                group_sealed=group_sealed,
                retain_turn=retain_turn,
                spawn_kwargs={
                    "priority": request.priority,
                    "context_snapshot": snapshot,
                    "spawn_reason": reason,
                    "description": description,
                    "query": request.query,
                    "parent_task_id": request.parent_task_id,
                    "task_id": task_id,
                    "merge_strategy": request.merge_strategy,
                    "propagate_on_cancel": propagate_on_cancel,
                    "notify_on_complete": notify_on_complete,
                },
            )
        return await self._finish_spawn(session, session_id, created, resolved, retain_turn)

    # -- tasks ---------------------------------------------------------------------------------

    async def list(
        self, *, session_id: str, status: TaskStatus | None = None
    ) -> builtins.list[TaskSummary]:
        """The session's tasks (of `status`, when given)."""
        session = await self._session(session_id)
        tasks = await session.list_tasks(status=status)
        return [
            TaskSummary(
                task_id=task.task_id,
                session_id=task.session_id,
                status=task.status,
                task_type=task.task_type,
                priority=task.priority,
                description=task.description,
                progress=task.progress,
                error=task.error,
                has_result=task.result is not None,
            )
            for task in tasks
        ]

    async def get(
        self, *, session_id: str, task_id: str, include_result: bool = False
    ) -> TaskDetails | None:
        """One task (None when the session has no such task)."""
        session = await self._session(session_id)
        task = await session.get_task(task_id)
        if task is None:
            return None
        snapshot = task.context_snapshot
        return TaskDetails(
            task_id=task.task_id,
            session_id=task.session_id,
            status=task.status,
            task_type=task.task_type,
            priority=task.priority,
            description=task.description,
            progress=task.progress,
            error=task.error,
            has_result=task.result is not None,
            result_digest=_digest(task.result) if include_result else [],
            spawned_from_task_id=snapshot.spawned_from_task_id if snapshot else None,
            spawned_from_event_id=snapshot.spawned_from_event_id if snapshot else None,
        )

    async def cancel(self, *, session_id: str, task_id: str, reason: str | None = None) -> bool:
        """Cancel a task (and its `cascade` children)."""
        session = await self._session(session_id)
        return bool(await session.cancel_task(task_id, reason=reason))

    async def _steer(
        self, session: Any, session_id: str, task_id: str, kind: str, **payload: Any
    ) -> bool:
        from .steering import SteeringEvent, SteeringEventType

        event = SteeringEvent(
            session_id=session_id,
            task_id=task_id,
            event_type=SteeringEventType(kind),
            payload=payload,
            source="user",
        )
        return bool(await session.steer(event))

    async def prioritize(self, *, session_id: str, task_id: str, priority: int) -> bool:
        """Change a task's priority."""
        session = await self._session(session_id)
        return await self._steer(session, session_id, task_id, "PRIORITIZE", priority=priority)

    async def apply_patch(
        self,
        *,
        session_id: str,
        patch_id: str,
        action: str,
        strategy: MergeStrategy | None = None,
    ) -> bool:
        """Apply (or reject) a pending, human-gated patch."""
        _check_choice("action", action, ("apply", "reject"))
        session = await self._session(session_id)
        if action == "reject":
            return await self._steer(
                session, session_id, "context_patch", "REJECT", patch_id=patch_id
            )
        return bool(await session.apply_pending_patch(patch_id=patch_id, strategy=strategy))

    async def acknowledge_background(self, *, session_id: str, task_ids: builtins.list[str]) -> int:
        """Mark background results as used; returns how many were pending."""
        session = await self._session(session_id)
        return int(await session.mark_background_consumed(task_ids=list(task_ids)))

    # -- groups --------------------------------------------------------------------------------

    async def seal_group(
        self,
        *,
        session_id: str,
        group_id: str | None = None,
        group_name: str | None = None,
        turn_id: str | None = None,
    ) -> dict[str, Any]:
        """Close a group to new tasks."""
        session = await self._session(session_id)
        group = await session.get_group(group_id=group_id, group_name=group_name, turn_id=turn_id)
        if group is None:
            return {"ok": False, "error": "group_not_found"}
        if group.status != "open":
            return {"ok": False, "error": "group_not_open", "status": group.status}
        await session.seal_group(group.group_id)
        now = await session.get_group(group_id=group.group_id)
        return {
            "ok": True,
            "group_id": group.group_id,
            "status": now.status if now is not None else "sealed",
            "sealed_task_count": len(group.task_ids),
        }

    async def cancel_group(
        self,
        *,
        session_id: str,
        group_id: str,
        reason: str | None = None,
        propagate_on_cancel: PropagateOnCancel = "cascade",
    ) -> dict[str, Any]:
        """Cancel a group; with `cascade`, its tasks that have not ended too."""
        _check_choice("propagate_on_cancel", propagate_on_cancel, ("cascade", "isolate"))
        session = await self._session(session_id)
        group = await session.get_group(group_id=group_id)
        if group is None:
            return {"ok": False, "error": "group_not_found"}
        cascade = propagate_on_cancel == "cascade"
        pending = list(group.pending_task_ids)
        await session.cancel_group(group_id, reason=reason, propagate=cascade)
        return {
            "ok": True,
            "group_id": group_id,
            "cancelled_task_count": len(pending) if cascade else 0,
            "total_tasks": len(group.task_ids),
        }

    async def apply_group(
        self,
        *,
        session_id: str,
        group_id: str,
        action: str = "apply",
        strategy: MergeStrategy | None = None,
    ) -> dict[str, Any]:
        """Apply (or reject) every pending patch of a finished group."""
        _check_choice("action", action, ("apply", "reject"))
        session = await self._session(session_id)
        group = await session.get_group(group_id=group_id)
        if group is None:
            return {"ok": False, "error": "group_not_found"}
        if not group.is_complete:
            return {
                "ok": False,
                "error": "group_not_complete",
                "pending_tasks": list(group.pending_task_ids),
            }
        applied = rejected = 0
        for patch_id in list(group.patches):
            if action == "apply":
                if await session.apply_pending_patch(patch_id=patch_id, strategy=strategy):
                    applied += 1
            elif await self._steer(
                session, session_id, "context_patch", "REJECT", patch_id=patch_id
            ):
                rejected += 1
        return {
            "ok": True,
            "group_id": group_id,
            "action": action,
            "applied_patch_count": applied,
            "rejected_patch_count": rejected,
            "total_patches": len(group.patches),
        }

    async def list_groups(
        self, *, session_id: str, status: GroupStatus | None = None
    ) -> builtins.list[TaskGroup]:
        """The session's task groups (of `status`, when given)."""
        session = await self._session(session_id)
        groups: builtins.list[TaskGroup] = await session.list_groups(status=status)
        return groups

    async def get_group(
        self,
        *,
        session_id: str,
        group_id: str | None = None,
        group_name: str | None = None,
        turn_id: str | None = None,
    ) -> TaskGroup | None:
        """One group, by id or by name (None when there is none)."""
        session = await self._session(session_id)
        group: TaskGroup | None = await session.get_group(
            group_id=group_id, group_name=group_name, turn_id=turn_id
        )
        return group
