"""Calling tools for a run: one call with its events, and a parallel plan with its join.

Every call goes through `ToolRunner.call`: the `tool_call_start`/`tool_call_end`/
`tool_call_result` events, the tool context (`ctx`), the node's policy (timeout, retries,
circuit breaker, in `_executor`), and the shaping of the result for the model (clamped,
artifact fields taken out, in `_observations`). A failed call is an observation for the model
(`tool '<name>' raised <Type>: <text>`), never an exception; a pause stops the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from penguiflow.catalog import NodeSpec
from penguiflow.errors import describe_exception
from penguiflow.joins import BranchOutcome, JoinRequest, JoinStrategy
from penguiflow.memory import MemoryKey
from penguiflow.observability import capture_content, clip_content, enabled, observe
from penguiflow.runtime import CircuitBreaker

from ._actions import ParallelJoin, PlannerAction
from ._audit import audited_tool_action, record_tool_call
from ._background_support import spawn_in_background
from ._events import EmitFn
from ._executor import PauseRequested, run_tool
from ._failures import is_failure
from ._observations import shape_observation
from ._tool_config import ObservationGuardrailConfig
from ._tool_context import PlannerToolContext
from .artifacts import ArtifactScope

__all__ = ["CallResult", "ParallelOutcome", "ToolRunner", "run_parallel"]

#: join arguments filled from the branches when a join names no `inject` mapping
_IMPLICIT_SOURCES = {
    "results": "$results",
    "branches": "$branches",
    "failures": "$failures",
    "success_count": "$success_count",
    "failure_count": "$failure_count",
    "expect": "$expect",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


@dataclass
class CallResult:
    """What one tool call came to."""

    name: str
    args: dict[str, Any]
    call_id: str
    ok: bool = False
    #: the result as recorded (JSON), or the pause record for a paused call
    observation: Any = None
    #: what the model is shown, when it differs from `observation`
    llm_observation: Any = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failure: dict[str, Any] | None = None
    pause: PauseRequested | None = None
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def branch(self) -> dict[str, Any]:
        """The call as one branch of a parallel plan's observation."""
        entry: dict[str, Any] = {"node": self.name, "args": self.args}
        if self.ok:
            entry["observation"] = self.observation
        elif self.pause is not None:
            entry["pause"] = {"reason": self.pause.reason, "payload": self.pause.payload}
        else:
            entry["error"] = self.error
            entry["failure"] = self.failure
        return entry

    def llm_branch(self) -> dict[str, Any]:
        entry = self.branch()
        if self.ok and self.llm_observation is not None:
            entry["observation"] = self.llm_observation
        entry.pop("failure", None)
        return entry


class ToolRunner:
    """Calls tools for one run."""

    def __init__(
        self,
        *,
        emit: EmitFn,
        llm_context: Callable[[], Mapping[str, Any]],
        tool_context: dict[str, Any],
        state_store: Any,
        artifact_store: Any,
        memory_key: MemoryKey | None,
        trace_id: str | None,
        pause_enabled: bool,
        observation_config: ObservationGuardrailConfig,
        breakers: Mapping[str, CircuitBreaker],
        on_artifacts: Callable[[str, dict[str, Any]], None],
        background: Any = None,
    ) -> None:
        self._emit = emit
        self._llm_context = llm_context
        self._tool_context = tool_context
        self._state_store = state_store
        self._artifact_store = artifact_store
        self._memory_key = memory_key
        self._trace_id = trace_id
        self._pause_enabled = pause_enabled
        self._observation_config = observation_config
        self._breakers = breakers
        self._on_artifacts = on_artifacts
        #: the planner's BackgroundTasksConfig (None: tools always run inline)
        self._background = background

    def _scope(self) -> ArtifactScope:
        """Where a large result stored as an artifact belongs (PenguiFlow's: the run's
        tenant, user, session and trace)."""
        context = self._tool_context
        key = self._memory_key

        def part(name: str, fallback: str | None) -> str | None:
            value = context.get(name)
            return str(value) if value not in (None, "") else fallback

        return ArtifactScope(
            tenant_id=part("tenant_id", key.tenant_id if key else None),
            user_id=part("user_id", key.user_id if key else None),
            session_id=part("session_id", key.session_id if key else None),
            trace_id=self._trace_id,
        )

    async def call(
        self,
        spec: NodeSpec,
        args: dict[str, Any],
        *,
        call_id: str,
        action_seq: int,
        extra_tool_context: Mapping[str, Any] | None = None,
    ) -> CallResult:
        """Call `spec` with `args` (already checked) and report it with events; observed as
        one `tool.call` unit of work, the tool's code running inside its span."""
        if not enabled():
            return await self._call(
                spec, args, call_id=call_id, action_seq=action_seq,
                extra_tool_context=extra_tool_context,
            )  # fmt: skip
        attributes = {
            "tool": spec.name,
            "side_effects": spec.side_effects,
            "tool_call_id": call_id,
            "action_seq": action_seq,
        }
        async with observe("tool", "call", trace_id=self._trace_id, attributes=attributes) as unit:
            if capture_content():
                unit.attributes["arguments"] = clip_content(args)
            result = await self._call(
                spec, args, call_id=call_id, action_seq=action_seq,
                extra_tool_context=extra_tool_context,
            )  # fmt: skip
            if result.pause is not None:
                unit.attributes["paused"] = True
            elif not result.ok:
                failure = result.failure or {}
                unit.fail(result.error or "tool failed", str(failure.get("error_code") or ""))
            elif capture_content():
                unit.attributes["result"] = clip_content(result.observation)
            return result

    async def _call(
        self,
        spec: NodeSpec,
        args: dict[str, Any],
        *,
        call_id: str,
        action_seq: int,
        extra_tool_context: Mapping[str, Any] | None,
    ) -> CallResult:
        name = spec.name
        result = CallResult(name=name, args=args, call_id=call_id)
        await self._emit(
            "tool_call_start",
            {"tool_call_id": call_id, "tool_name": name, "args_json": _dumps(args),
             "action_seq": action_seq},
        )  # fmt: skip
        tool_context = self._tool_context
        if extra_tool_context:
            # A join tool sees the branches' results in its own copy of the context.
            tool_context = {**tool_context, **extra_tool_context}
        ctx = PlannerToolContext(
            llm_context=self._llm_context(),
            tool_context=tool_context,
            tool_name=name,
            tool_call_id=call_id,
            emit=self._emit,
            state_store=self._state_store,
            artifact_store=self._artifact_store,
            memory_key=self._memory_key,
            trace_id=self._trace_id,
            pause_enabled=self._pause_enabled,
        )
        handle: dict[str, Any] | None = None
        if self._background is not None:
            try:
                handle = await spawn_in_background(self._background, spec, args, tool_context)
            except Exception as exc:  # a refused spawn is an observation, like a tool error
                result.error = (
                    f"tool '{name}' could not start in the background: "
                    f"{type(exc).__name__}: {describe_exception(exc)}"
                )
                result.failure = {"node": name, "args": args,
                                  "error_code": type(exc).__name__,
                                  "message": describe_exception(exc)}  # fmt: skip
        if handle is not None:
            # A tool marked to run in the background went to the task service: the model
            # sees the task's handle now, the result arrives later as a background result.
            result.ok = True
            result.observation = handle
        elif result.error is None:
            await self._call_inline(spec, args, ctx, result)
        result.streams = {key: list(chunks) for key, chunks in ctx.streams.items()}
        await self._report(result, action_seq)
        action = audited_tool_action(spec)
        if action is not None:  # writes and destructive tools go to the audit trail
            await record_tool_call(
                action,
                spec=spec,
                call_id=call_id,
                args=args,
                outcome="ok" if result.ok else ("paused" if result.pause else "error"),
                error=result.error,
                tool_context=tool_context,
                memory_key=self._memory_key,
                trace_id=self._trace_id,
                store=self._state_store,
            )
        return result

    async def _call_inline(
        self, spec: NodeSpec, args: dict[str, Any], ctx: PlannerToolContext, result: CallResult
    ) -> None:
        name = spec.name
        try:
            outcome = await run_tool(spec, args, ctx, self._breakers.get(name))
        except PauseRequested as pause:
            result.pause = pause
            result.observation = {"pause": pause.reason, "payload": pause.payload}
        else:
            if outcome.ok:
                shaped = await shape_observation(
                    outcome.output,
                    tool_name=name,
                    out_model=spec.out_model,
                    config=self._observation_config,
                    artifact_store=self._artifact_store,
                    emit=self._emit,
                    scope=self._scope(),
                )
                result.ok = True
                result.observation = shaped.stored
                result.llm_observation = shaped.for_llm
                result.artifacts = shaped.artifacts
                if shaped.artifacts:
                    self._on_artifacts(name, shaped.artifacts)
            else:
                result.error = f"tool '{name}' raised {outcome.error_type}: {outcome.error}"
                result.failure = {
                    "node": name,
                    "args": args,
                    "error_code": outcome.error_type,
                    "message": outcome.error,
                }

    async def _report(self, result: CallResult, action_seq: int) -> None:
        name, call_id = result.name, result.call_id
        await self._emit(
            "tool_call_end", {"tool_call_id": call_id, "tool_name": name, "action_seq": action_seq}
        )
        if result.ok:
            shown = (
                result.llm_observation
                if result.llm_observation is not None
                else (result.observation)
            )
            reported: Any = shown
        elif result.pause is not None:
            reported = result.observation
        else:
            reported = {"error": result.error, "failure": result.failure}
        await self._emit(
            "tool_call_result",
            {"tool_call_id": call_id, "tool_name": name, "result_json": _dumps(reported),
             "action_seq": action_seq},
        )  # fmt: skip


@dataclass
class ParallelOutcome:
    """What a parallel plan came to: the step's observation (and the model's view of it), or
    a pause of a branch or of the join."""

    observation: dict[str, Any]
    llm_observation: dict[str, Any]
    hops: int
    pause: PauseRequested | None = None
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


async def run_parallel(
    runner: ToolRunner,
    calls: Sequence[tuple[NodeSpec, dict[str, Any]]],
    *,
    action: PlannerAction,
    action_seq: int,
    join_tool: tuple[NodeSpec, ParallelJoin] | None,
    join_strategy: JoinStrategy | None,
    max_concurrent: int | None,
) -> ParallelOutcome:
    """Run every call of a plan at once (at most `max_concurrent` at a time when set) in one
    task group, so that a cancelled run cancels and awaits every branch; then the join: a join
    tool (skipped when a branch failed or paused, as PenguiFlow does), or a join strategy
    (ours: it sees every branch, failed ones included)."""
    results: list[CallResult | None] = [None] * len(calls)
    limiter = anyio.CapacityLimiter(max_concurrent) if max_concurrent else None

    async def branch(index: int, spec: NodeSpec, args: dict[str, Any]) -> None:
        call_id = f"call_{action_seq}_parallel_{index}"
        if limiter is None:
            results[index] = await _guarded(runner, spec, args, call_id, action_seq)
            return
        async with limiter:
            results[index] = await _guarded(runner, spec, args, call_id, action_seq)

    async with anyio.create_task_group() as group:
        for index, (spec, args) in enumerate(calls):
            group.start_soon(branch, index, spec, args, name=f"penguiflow-planner:branch-{index}")
    done = [r for r in results if r is not None]
    streams: dict[str, list[dict[str, Any]]] = {}
    for result in done:
        for key, chunks in result.streams.items():
            streams.setdefault(key, []).extend(chunks)
    succeeded = sum(1 for r in done if r.ok)
    observation: dict[str, Any] = {
        "branches": [r.branch() for r in done],
        "stats": {"success": succeeded, "failed": len(done) - succeeded},
    }
    shown: dict[str, Any] = {
        "branches": [r.llm_branch() for r in done],
        "stats": dict(observation["stats"]),
    }
    hops = len(done)
    paused = next((r.pause for r in done if r.pause is not None), None)
    if paused is not None:
        skipped = {"status": "skipped", "reason": "pause"}
        if join_tool is not None or join_strategy is not None:
            observation["join"] = shown["join"] = skipped
        return ParallelOutcome(observation, shown, hops, pause=paused, streams=streams)
    if join_strategy is not None:
        joined = await join_strategy.join(
            JoinRequest(branches=[_branch_outcome(r) for r in done], expected_count=len(calls))
        )
        observation["join"] = shown["join"] = joined.observation
        if joined.pause is not None:
            pause = PauseRequested(joined.pause.reason, joined.pause.payload)
            return ParallelOutcome(observation, shown, hops, pause=pause, streams=streams)
    elif join_tool is not None:
        spec, join = join_tool
        failures = [r for r in done if not r.ok]
        if failures:
            not_joined: dict[str, Any] = {
                "status": "skipped",
                "reason": "branch_failures",
                "failures": [{"node": r.name, "error": r.error} for r in failures],
            }
            observation["join"] = shown["join"] = not_joined
        else:
            joined_call = await _call_join(runner, spec, join, done, len(calls), action_seq)
            hops += 1
            observation["join"] = _join_entry(joined_call, llm=False)
            shown["join"] = _join_entry(joined_call, llm=True)
            if joined_call.pause is not None:
                return ParallelOutcome(
                    observation, shown, hops, pause=joined_call.pause, streams=streams
                )
    return ParallelOutcome(observation, shown, hops, streams=streams)


async def _guarded(
    runner: ToolRunner, spec: NodeSpec, args: dict[str, Any], call_id: str, action_seq: int
) -> CallResult:
    """A branch never fails its task group: anything `call` raises (a bug in a context or a
    shaping step, not the tool's own failure, which `call` reports) becomes the branch's
    error, so the other branches are not cancelled for it."""
    try:
        return await runner.call(spec, args, call_id=call_id, action_seq=action_seq)
    except BaseException as exc:
        if not is_failure(exc):
            raise
        text = describe_exception(exc)
        return CallResult(
            name=spec.name,
            args=args,
            call_id=call_id,
            error=f"tool '{spec.name}' failed in the planner: {type(exc).__name__}: {text}",
            failure={"node": spec.name, "args": args, "error_code": type(exc).__name__,
                     "message": text},
        )  # fmt: skip


def _branch_outcome(result: CallResult) -> BranchOutcome:
    return BranchOutcome(
        tool=result.name,
        args=result.args,
        ok=result.ok,
        output=result.observation if result.ok else None,
        error=None if result.ok else result.error,
        error_type=None if result.ok else (result.failure or {}).get("error_code"),
    )


def join_sources(results: Sequence[CallResult], expected: int) -> dict[str, Any]:
    """The values a join tool's `inject` mapping may name."""
    failures = [r for r in results if not r.ok]
    return {
        "$results": [r.observation for r in results if r.ok],
        "$branches": [r.branch() for r in results],
        "$failures": [{"node": r.name, "args": r.args, "error": r.error} for r in failures],
        "$success_count": sum(1 for r in results if r.ok),
        "$failure_count": len(failures),
        "$expect": expected,
    }


def join_arguments(
    spec: NodeSpec, join: ParallelJoin, sources: Mapping[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """The join tool's arguments: its `args`, plus the injected sources (its `inject`
    mapping, or else the fields its input model names after a source). An unknown source is
    an error for the model."""
    args = dict(join.args)
    if join.inject is not None:
        for target, source in join.inject.mapping.items():
            if source not in sources:
                known = ", ".join(sorted(sources))
                return args, f"join inject: unknown source {source!r} for {target!r}; use {known}"
            args[target] = sources[source]
        return args, None
    fields = (
        set(spec.args_model.model_fields)
        if spec.args_model is not None
        else set((spec.input_schema or {}).get("properties", {}))
    )
    for target, source in _IMPLICIT_SOURCES.items():
        if target in fields and target not in args:
            args[target] = sources[source]
    return args, None


async def _call_join(
    runner: ToolRunner,
    spec: NodeSpec,
    join: ParallelJoin,
    results: Sequence[CallResult],
    expected: int,
    action_seq: int,
) -> CallResult:
    sources = join_sources(results, expected)
    args, problem = join_arguments(spec, join, sources)
    call_id = f"call_{action_seq}_join"
    if problem is not None:
        return CallResult(name=spec.name, args=args, call_id=call_id, error=problem)
    errors = spec.argument_errors(args)
    if errors:
        text = "; ".join(errors)
        return CallResult(
            name=spec.name, args=args, call_id=call_id,
            error=f"join tool '{spec.name}' arguments are invalid: {text}",
        )  # fmt: skip
    extra = {
        "parallel_results": sources["$results"],
        "parallel_success_count": sources["$success_count"],
        "parallel_failure_count": sources["$failure_count"],
        "parallel_failures": sources["$failures"],
        "parallel_input": dict(join.args),
    }
    return await runner.call(
        spec, args, call_id=call_id, action_seq=action_seq, extra_tool_context=extra
    )


def _join_entry(result: CallResult, *, llm: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"node": result.name}
    if result.ok:
        shown = result.llm_observation if llm and result.llm_observation is not None else None
        entry["observation"] = shown if shown is not None else result.observation
    elif result.pause is not None:
        entry["status"] = "paused"
        entry["pause"] = {"reason": result.pause.reason, "payload": result.pause.payload}
    else:
        entry["error"] = result.error
    return entry
