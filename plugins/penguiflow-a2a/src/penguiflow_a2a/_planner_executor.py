"""Running a `ReactPlanner` (penguiflow-planner) as an A2A task.

Each task is one ``planner.run(text, llm_context=..., tool_context=...)``; how the run ends
decides the task's state:

- a finish that answered: ``completed``, the answer's text as the ``answer`` artifact (its
  structured payload, when there is one, as a data part of the same artifact);
- a finish without an answer (``no_path``, ``budget_exhausted``): ``failed``, with the reason;
- a pause: ``input-required``, the pause's reason and payload in the status message. The
  resume token stays on the server, in the task's stored executor state; the client's next
  message on the same task id resumes the run with ``planner.resume(token, user_input=text)``.

Streamed pieces become artifact updates while the run goes on: a tool's ``ctx.emit_chunk``
text (one ``stream`` artifact per stream id), its ``ctx.emit_artifact`` chunks (data parts),
and the model's answer as it is written (``answer-stream``, with
``ReactPlanner(stream_final_response=True)``). The model's "thinking" pieces are not sent:
they are the planner's working notes, not output for the caller.

The planner is shared by every task. Its events reach us through a middleware we add to
``planner.middlewares``; a context variable set around each run tells which task an event
belongs to (the planner awaits its event receivers inside the run, so the run's context is
the one the middleware sees).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Mapping
from typing import Any

from penguiflow.errors import ConfigurationError, describe_exception

from ._flow_executor import result_parts
from ._tasks import ExecutionContext, TaskUpdater
from ._wire import Part

__all__ = ["PlannerExecutor", "is_planner"]

#: where the resume token of a paused run is kept (the task's executor state, server side)
_TOKEN_KEY = "planner_resume_token"

ToolContextFactory = Callable[[ExecutionContext], Mapping[str, Any]]


def is_planner(target: Any) -> bool:
    """Whether ``target`` is a `penguiflow_planner.ReactPlanner` (without importing the
    planner when it is not installed)."""
    try:
        from penguiflow_planner import ReactPlanner
    except ImportError:
        return False
    return isinstance(target, ReactPlanner)


class _Run:
    """One task's run: where its streamed pieces go."""

    __slots__ = ("streams", "updater")

    def __init__(self, updater: TaskUpdater) -> None:
        self.updater = updater
        #: (kind, stream id) -> the artifact its pieces are appended to
        self.streams: dict[tuple[str, str], str] = {}

    async def piece(self, key: tuple[str, str], name: str, part: Part, done: bool) -> None:
        artifact_id = self.streams.get(key)
        new_id = await self.updater.artifact(
            [part],
            artifact_id=artifact_id,
            name=name,
            append=artifact_id is not None,
            last_chunk=done,
        )
        if done:
            self.streams.pop(key, None)
        else:
            self.streams[key] = new_id


_CURRENT: contextvars.ContextVar[_Run | None] = contextvars.ContextVar(
    "penguiflow_a2a_planner_run", default=None
)


class _EventRelay:
    """The middleware added to the planner: streamed pieces of the current task's run become
    artifact updates; every other event is ignored."""

    async def __call__(self, event: Any) -> None:
        run = _CURRENT.get()
        if run is None:
            return  # a run this executor did not start (the planner is used elsewhere too)
        kind = str(getattr(event, "event_type", "")).removeprefix("planner_")
        extra: Mapping[str, Any] = getattr(event, "extra", None) or {}
        done = bool(extra.get("done"))
        if kind == "stream_chunk":
            stream = str(extra.get("stream_id") or "stream")
            text = str(extra.get("text") or "")
            await run.piece(("text", stream), "stream", Part(text=text), done)
        elif kind == "artifact_chunk":
            stream = str(extra.get("stream_id") or "artifact")
            name = str(extra.get("artifact_type") or "artifact")
            await run.piece(("data", stream), name, Part(data=extra.get("chunk")), done)
        elif kind == "llm_stream_chunk" and extra.get("channel") == "answer":
            text = str(extra.get("text") or "")
            if text or done:
                stream = str(extra.get("action_seq", "answer"))
                await run.piece(("answer", stream), "answer-stream", Part(text=text), done)


def _answer_parts(payload: Any) -> list[Part]:
    """A finish's payload as artifact parts: the answer's text, then its structured payload."""
    if isinstance(payload, Mapping) and isinstance(payload.get("raw_answer"), str):
        parts = [Part(text=payload["raw_answer"])]
        structured = payload.get("structured")
        if structured is not None:
            parts.append(Part(data=structured))
        return parts
    if payload is None:
        return [Part(text="")]
    return result_parts(payload)


class PlannerExecutor:
    """Executes A2A tasks with a `ReactPlanner`, concurrently (one run per task).

    ``tool_context`` adds entries to what the planner's tools see (a mapping, or a function of
    the `ExecutionContext` returning one: per-tenant clients, say); the executor always sets
    ``trace_id`` (the task id), ``tenant_id`` (the caller's tenant), ``session_id`` (the A2A
    context id, so a planner with short-term memory remembers a conversation across its
    tasks) and ``a2a_task_id``, ``a2a_context_id``, ``a2a_skill``, ``a2a_metadata``. The
    model sees the request's skill and metadata in its ``llm_context`` (``a2a``) when the
    caller sent any.

    The planner must keep pauses somewhere every server process sees (its ``state_store``)
    for a follow-up to resume a task after a restart; the token itself is saved with the
    task. The executor adds one middleware to ``planner.middlewares`` (once, however many
    executors share the planner) to relay streamed chunks; it ignores runs it did not start.
    """

    def __init__(
        self,
        planner: Any,
        *,
        tool_context: Mapping[str, Any] | ToolContextFactory | None = None,
        result_name: str = "answer",
    ) -> None:
        if not all(callable(getattr(planner, name, None)) for name in ("run", "resume")):
            raise ConfigurationError(
                f"PlannerExecutor needs a ReactPlanner (with run and resume), got "
                f"{type(planner).__name__}; serve a flow with FlowExecutor instead"
            )
        middlewares = getattr(planner, "middlewares", None)
        if not isinstance(middlewares, list):
            raise ConfigurationError(
                f"{type(planner).__name__}.middlewares is not a list: the executor relays "
                "streamed chunks through a planner middleware; use penguiflow_planner's "
                "ReactPlanner"
            )
        if not any(isinstance(m, _EventRelay) for m in middlewares):
            middlewares.append(_EventRelay())
        self.planner = planner
        self._tool_context = tool_context
        self._result_name = result_name
        self._running: dict[str, asyncio.Task[Any]] = {}

    def _tools(self, context: ExecutionContext) -> dict[str, Any]:
        extra = self._tool_context
        if callable(extra):
            extra = extra(context)
        tools: dict[str, Any] = dict(extra or {})
        tools.update(
            trace_id=context.task_id,
            tenant_id=context.tenant,
            session_id=context.context_id,
            a2a_task_id=context.task_id,
            a2a_context_id=context.context_id,
            a2a_skill=context.skill,
            a2a_metadata=dict(context.message.metadata or {}),
        )
        return tools

    @staticmethod
    def _llm_context(context: ExecutionContext) -> dict[str, Any] | None:
        a2a: dict[str, Any] = {}
        if context.skill is not None:
            a2a["skill"] = context.skill
        if context.metadata:
            a2a["metadata"] = context.metadata
        return {"a2a": a2a} if a2a else None

    @staticmethod
    def _owner(context: ExecutionContext) -> str:
        # Only this task may resume its pause, even if a token leaked from the store.
        return f"a2a:{context.tenant}:{context.task_id}"

    async def execute(self, context: ExecutionContext, updater: TaskUpdater) -> None:
        current = asyncio.current_task()
        if current is not None:
            self._running[context.task_id] = current
        reset = _CURRENT.set(_Run(updater))
        resumed: str | None = None
        try:
            if context.resuming:
                token = context.state.pop(_TOKEN_KEY, None)
                if not isinstance(token, str):
                    await updater.fail(
                        "this task has no paused planner run to resume (its pause was lost); "
                        "start a new task"
                    )
                    return
                resumed = token
                try:
                    outcome = await self.planner.resume(
                        token,
                        user_input=context.text,
                        tool_context=self._tools(context),
                        owner=self._owner(context),
                    )
                except KeyError:
                    await updater.fail(
                        "the planner no longer holds this task's pause (it was resumed "
                        "elsewhere, or the planner's state store lost it); start a new task"
                    )
                    return
            else:
                outcome = await self.planner.run(
                    context.text,
                    llm_context=self._llm_context(context),
                    tool_context=self._tools(context),
                    owner=self._owner(context),
                )
            await self._report(outcome, context, updater, resumed)
        finally:
            _CURRENT.reset(reset)
            self._running.pop(context.task_id, None)

    async def _report(
        self,
        outcome: Any,
        context: ExecutionContext,
        updater: TaskUpdater,
        resumed_token: str | None,
    ) -> None:
        token = getattr(outcome, "resume_token", None)
        if isinstance(token, str):  # a PlannerPause
            context.state[_TOKEN_KEY] = token
            why = str(getattr(outcome, "reason", "await_input"))
            payload = dict(getattr(outcome, "payload", None) or {})
            await updater.require_input(
                f"the agent paused ({why}); reply on this task to continue",
                data={"reason": why, "payload": payload},
            )
            return
        reason = getattr(outcome, "reason", None)
        metadata: Mapping[str, Any] = getattr(outcome, "metadata", None) or {}
        if reason == "answer_complete":
            parts = _answer_parts(getattr(outcome, "payload", None))
            await updater.artifact(parts, name=self._result_name)
            await updater.complete()
            return
        if resumed_token is not None and metadata.get("resumable"):
            # The continuation failed before doing anything; the planner put the pause back
            # under the same token, so the task can wait for the answer again.
            context.state[_TOKEN_KEY] = resumed_token
            await updater.require_input(
                f"continuing failed ({_why(reason, metadata)}); reply on this task to try again"
            )
            return
        await updater.fail(f"the planner gave no answer: {_why(reason, metadata)}")

    async def cancel(self, context: ExecutionContext) -> None:
        """Cancel the task's run (the planner cancels the tool it is awaiting)."""
        running = self._running.get(context.task_id)
        if running is not None and not running.done():
            running.cancel()


def _why(reason: Any, metadata: Mapping[str, Any]) -> str:
    precise = metadata.get("finish_reason") or reason or "unknown"
    text = str(reason) if precise == reason else f"{reason} ({precise})"
    error = metadata.get("error")
    if isinstance(error, BaseException):
        error = describe_exception(error)
    return f"{text}: {error}" if error else text
