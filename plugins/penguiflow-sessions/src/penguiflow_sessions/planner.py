"""A planner run as a session task: `PlannerTaskPipeline`.

The pipeline builds a planner for the task (`planner_factory`, usually `planner.fork`, so that
concurrent tasks never share a run's state), streams its events to the session as updates
(`PlannerEventProjector`), waits for approve/reject through the task's steering inbox when the
planner pauses, and turns the finish into a `TaskResult` whose `ContextPatch` carries the
answer as its digest, the artifacts as a list of `{node, field, artifact}` dicts, and the
sources.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from penguiflow_planner import PlannerEvent, PlannerFinish, PlannerPause, ReactPlanner
from penguiflow_planner._steering import SteeringCancelled
from pydantic import BaseModel

from .models import (
    ContextPatch,
    NotificationAction,
    NotificationPayload,
    TaskResult,
    TaskStatus,
    TaskType,
    UpdateType,
)
from .projections import PlannerEventProjector

__all__ = ["PlannerEventSink", "PlannerFactory", "PlannerTaskPipeline"]

PlannerFactory: TypeAlias = Callable[[], ReactPlanner]
"""Builds the planner one task runs (called once per task)."""

PlannerEventSink: TypeAlias = Callable[[PlannerEvent, "str | None"], None]
"""Also receives every planner event of the task, with the task's trace id."""

#: characters of the answer kept as a patch's digest (PenguiFlow's bound)
DIGEST_CHARS = 5000

_ANSWER_KEYS = ("raw_answer", "answer", "text", "content", "message")


async def _settle(value: Any) -> Any:
    """`value`, awaited when it is awaitable: the engine's methods may be sync or async."""
    if inspect.isawaitable(value):
        return await value
    return value


def _artifact_value(value: Any) -> dict[str, Any] | None:
    """One artifact as JSON (a model dumped, a dict kept); None for a value that is not an
    artifact (a bare string or number a tool left in an artifact field)."""
    if isinstance(value, BaseModel):
        dumped: dict[str, Any] = value.model_dump(mode="json")
        return dumped
    if isinstance(value, Mapping):
        return dict(value)
    return None


def artifacts_as_list(artifacts: Any) -> list[dict[str, Any]]:
    """The planner's artifacts (`{tool: {field: artifact}}`) as a patch's list of
    `{"node", "field", "artifact"}` dicts; a list given is kept (its dicts only).

    PenguiFlow once stored the mapping's keys here and every task with an artifact ended as
    FAILED; the list keeps each artifact and concatenates across tasks."""
    if not artifacts:
        return []
    if isinstance(artifacts, list):
        return [dict(item) for item in artifacts if isinstance(item, Mapping)]
    if not isinstance(artifacts, Mapping):
        return []
    entries: list[dict[str, Any]] = []
    for node, fields in artifacts.items():
        if isinstance(fields, Mapping) and not _looks_like_artifact(fields):
            for field_name, value in fields.items():
                item = _artifact_value(value)
                if item is not None:
                    entries.append({"node": str(node), "field": str(field_name), "artifact": item})
            continue
        item = _artifact_value(fields)
        if item is not None:
            entries.append({"node": str(node), "field": None, "artifact": item})
    return entries


def _looks_like_artifact(value: Mapping[str, Any]) -> bool:
    # A stored artifact's reference (`ArtifactRef` dumped) directly under a tool's name.
    return isinstance(value.get("id"), str) and "mime_type" in value


def answer_text(payload: Any) -> str | None:
    """The answer's text in a finish payload (a string, or the first of PenguiFlow's answer
    keys in a mapping or an object)."""
    if payload is None:
        return None
    if isinstance(payload, str):
        return payload
    for key in _ANSWER_KEYS:
        value = payload.get(key) if isinstance(payload, Mapping) else getattr(payload, key, None)
        if value is not None:
            return str(value)
    return None


def _sources(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = metadata.get("sources") or []
    if not isinstance(found, list):
        return []
    return [dict(item) if isinstance(item, Mapping) else {"source": item} for item in found]


def build_context_patch(
    *,
    task_id: str,
    payload: Any,
    metadata: Mapping[str, Any],
    context_version: int | None,
    context_hash: str | None,
    spawned_from_event_id: str | None,
) -> ContextPatch:
    """The patch a finished planner task offers its session's context."""
    answer = answer_text(payload)
    return ContextPatch(
        task_id=task_id,
        spawned_from_event_id=spawned_from_event_id,
        source_context_version=context_version,
        source_context_hash=context_hash,
        digest=[answer[:DIGEST_CHARS]] if answer else [],
        artifacts=artifacts_as_list(metadata.get("artifacts")),
        sources=_sources(metadata),
    )


def _kind(event: Any) -> str:
    kind = getattr(event, "event_type", "")
    return str(getattr(kind, "value", kind)).upper()


class PlannerTaskPipeline:
    """Runs a `ReactPlanner` as a session task (`session.spawn_task(PlannerTaskPipeline(...))`).

    The task's query is its snapshot's `query` (else its `spawn_reason`); its planner sees the
    snapshot's `llm_context` and `tool_context`, plus `session_id`, `task_id`, `trace_id` and
    `is_subagent` (True for a background task, whose `session_id` is
    `"<session>:<task>"` so that its memory stays apart from the conversation's)."""

    def __init__(
        self,
        *,
        planner_factory: PlannerFactory,
        event_sink: PlannerEventSink | None = None,
    ) -> None:
        if not callable(planner_factory):
            from penguiflow.errors import ConfigurationError

            raise ConfigurationError(
                "PlannerTaskPipeline(planner_factory=...) needs a callable that returns a "
                f"ReactPlanner (for example planner.fork), got {type(planner_factory).__name__}"
            )
        self._planner_factory = planner_factory
        self._event_sink = event_sink

    async def __call__(self, runtime: Any) -> TaskResult:
        state, snapshot = runtime.state, runtime.context_snapshot
        planner = self._planner_factory()
        trace_id = snapshot.trace_id or state.trace_id or secrets.token_hex(8)
        state.trace_id = trace_id
        projector = PlannerEventProjector(
            session_id=state.session_id, task_id=state.task_id, trace_id=trace_id
        )

        async def forward(event: PlannerEvent) -> None:
            for update in projector.project(event):
                await _settle(
                    runtime.emit_update(
                        update.update_type, update.content, step_index=update.step_index
                    )
                )
            if self._event_sink is not None:
                self._event_sink(event, trace_id)

        planner.event_callback = forward
        tool_context = self._tool_context(runtime, trace_id)
        query = snapshot.query or snapshot.spawn_reason or ""
        outcome = await planner.run(
            query=query,
            llm_context=dict(snapshot.llm_context or {}),
            tool_context=tool_context,
            steering=runtime.steering,
        )
        while isinstance(outcome, PlannerPause):
            outcome = await self._wait_and_resume(runtime, planner, outcome, tool_context)
        return self._result(runtime, outcome)

    @staticmethod
    def _tool_context(runtime: Any, trace_id: str) -> dict[str, Any]:
        state = runtime.state
        tools = dict(runtime.context_snapshot.tool_context or {})
        background = state.task_type == TaskType.BACKGROUND
        tools["session_id"] = (
            f"{state.session_id}:{state.task_id}" if background else (state.session_id)
        )
        if background:
            tools["parent_session_id"] = state.session_id
        tools["is_subagent"] = background
        tools["trace_id"] = trace_id
        tools["task_id"] = state.task_id
        return tools

    async def _status(self, runtime: Any, status: TaskStatus, reason: str) -> None:
        # The registry owns the status; the update tells watchers why it changed.
        registry = getattr(runtime.session, "registry", None)
        if registry is not None and hasattr(registry, "update_status"):
            await _settle(registry.update_status(runtime.state.task_id, status))
        await _settle(
            runtime.emit_update(
                UpdateType.STATUS_CHANGE, {"status": status.value, "reason": reason}
            )
        )

    async def _wait_and_resume(
        self, runtime: Any, planner: ReactPlanner, pause: PlannerPause, tools: dict[str, Any]
    ) -> PlannerFinish | PlannerPause:
        """Park the task until its inbox (which lives as long as the task) brings an approve
        or reject for this pause, or a cancel."""
        await self._status(runtime, TaskStatus.PAUSED, "checkpoint")
        await _settle(
            runtime.emit_update(
                UpdateType.CHECKPOINT,
                {
                    "kind": "approval_required",
                    # The token is a bearer secret of the paused run and updates are stored
                    # and streamed: they carry its reference, which approves it as well.
                    "resume_token": pause.ref,
                    "ref": pause.ref,
                    "reason": pause.reason,
                    "payload": pause.payload,
                    "prompt": "Approval required to continue.",
                    "options": ["approve", "reject"],
                },
            )
        )
        inbox = runtime.steering
        while True:
            if inbox.cancelled:
                raise SteeringCancelled(inbox.cancel_reason)
            event = await inbox.next()
            kind = _kind(event)
            payload = event.payload if isinstance(event.payload, Mapping) else {}
            if kind == "CANCEL":
                raise SteeringCancelled(str(payload.get("reason") or "cancelled"))
            if kind not in ("APPROVE", "REJECT"):
                continue  # other steering is for a running plan; it has none while paused
            if payload.get("resume_token") not in (pause.resume_token, pause.ref):
                continue  # an answer to another pause
            if kind == "REJECT":
                raise SteeringCancelled("pause_rejected")
            decision = payload.get("decision") or payload.get("user_input")
            await self._status(runtime, TaskStatus.RUNNING, "resume")
            return await planner.resume(
                pause.resume_token,
                user_input=str(decision) if decision is not None else None,
                tool_context=tools,
                steering=inbox,
            )

    @staticmethod
    def _result(runtime: Any, finish: PlannerFinish) -> TaskResult:
        state, snapshot = runtime.state, runtime.context_snapshot
        metadata = dict(finish.metadata or {})
        patch = build_context_patch(
            task_id=state.task_id,
            payload=finish.payload,
            metadata=metadata,
            context_version=snapshot.context_version,
            context_hash=snapshot.context_hash,
            spawned_from_event_id=snapshot.spawned_from_event_id,
        )
        notification = None
        if state.task_type == TaskType.BACKGROUND:
            notification = NotificationPayload(
                severity="info",
                title="Background task finished",
                body="A background task has a result that can be added to the conversation.",
                actions=[
                    NotificationAction(
                        id="apply_to_chat",
                        label="Add to conversation",
                        payload={"task_id": state.task_id},
                    )
                ],
            )
        return TaskResult(
            payload=finish.payload,
            context_patch=patch,
            digest=list(patch.digest),
            artifacts=list(patch.artifacts),
            sources=list(patch.sources),
            notification=notification,
            metadata=metadata,
        )
