"""One run of the planner, from its first step to its ending.

Each step: steering is applied, budgets are checked, the model decides (`_decide`), and the
decision is carried out: a tool call, a parallel plan, or a finish. Mistakes the model can fix
(an unknown tool, arguments that do not fit, a constraint it broke) are recorded as steps with
an error, and the model sees them; PenguiFlow's semantics. Concurrency is structured (anyio):
the run's deadline is a cancel scope around everything it does, and nothing a run starts
outlives it.

Whatever happens inside (a client raising the wrong error, a bug in a strategy), the run
returns a typed ending; only the caller's own cancellation, and `SteeringCancelled`, leave as
exceptions.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import ValidationError

from penguiflow.catalog import NodeSpec
from penguiflow.llm import LLMError
from penguiflow.observability import Observation, capture_content, clip_content, enabled, observe

from ._acting import ToolRunner, run_parallel
from ._actions import ParallelJoin, PlannerAction
from ._audit import record_pause
from ._decide import Decider, DecisionInputs, ModelCallFailed, RepairFailed
from ._endings import Endings
from ._events import PlannerEvent, publish
from ._failures import describe_failure, is_failure
from ._final import build_payload, ensure_structured
from ._guidance import GuidanceTracker
from ._observe import publish_planner_event, record_usage
from ._prompt import build_system_prompt, tool_records
from ._reflection import reflect
from ._results import PlannerFinish, PlannerPause, token_ref
from ._run import RunState, paused_state
from ._steering import SteeringCancelled, apply_steering, has_pending, race_cancel
from ._tool_search import RunCatalog
from ._trajectory import TrajectoryStep

if TYPE_CHECKING:
    from ._planner import ReactPlanner

__all__ = ["SHIELD_GRACE_S", "RunLoop"]

logger = logging.getLogger("penguiflow.planner")

#: the longest that work shielded from the deadline may take: the last events (an observer
#: that hangs must not hold the run), saving a pause, restoring a paused state
SHIELD_GRACE_S = 5.0

_PAUSE_REASONS = ("approval_required", "await_input", "external_event", "constraints_conflict")
Outcome = PlannerFinish | PlannerPause


def _record_outcome(unit: Observation, outcome: Outcome) -> None:
    """How a run ended, on its `planner.run` event: `outcome` ("finish" or "pause") and
    `reason` (the precise finish reason, or the pause's); a finish that is a failure is an
    error."""
    if isinstance(outcome, PlannerPause):
        unit.attributes.update(outcome="pause", reason=outcome.reason)
        return
    metadata = outcome.metadata
    unit.attributes.update(
        outcome="finish",
        reason=str(metadata.get("finish_reason") or outcome.reason),
        public_reason=outcome.reason,
    )
    if metadata.get("error") is not None and not outcome.ok:
        unit.fail(str(metadata["error"])[:512], "PlannerFinish")


class RunLoop:
    """Carries one run (a new one, or a resumed one) to its ending."""

    def __init__(
        self,
        planner: ReactPlanner,
        run: RunState,
        *,
        visibility: Any,
        steering: Any,
    ) -> None:
        self.planner = planner
        self.settings = planner._settings
        self.run = run
        self.steering = steering
        trajectory = run.trajectory
        tool_context = trajectory.tool_context if trajectory.tool_context is not None else {}
        trajectory.tool_context = tool_context
        run.activated = planner._tool_search.activations_for(tool_context, restored=run.activated)
        self._visibility = visibility
        self._catalog_generation = planner._catalog_generation
        self.catalog = self._run_catalog()
        self.guidance = GuidanceTracker(
            trajectory.metadata.setdefault("guidance", {}), templates=planner._templates
        )
        self.endings = Endings(planner, run, self.emit)
        settings = self.settings

        def streamer(action_seq: int) -> Any:
            if not settings.stream_final_response:
                return None
            from ._answer_stream import AnswerStreamer

            return AnswerStreamer(self.emit, action_seq=action_seq)

        self.decider = Decider(
            client=settings.client,
            summarizer_client=settings.summarizer_client or settings.client,
            templates=planner._templates,
            emit=self.emit,
            usage=run.usage,
            json_schema_mode=settings.json_schema_mode,
            repair_attempts=settings.repair_attempts,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            token_budget=settings.token_budget,
            error_recovery=planner._error_recovery,
            max_reply_bytes=settings.max_reply_bytes,
            max_json_depth=settings.max_json_depth,
            streamer_factory=streamer,
            model_name=getattr(settings.client, "model", None),
            counters=self.endings.counters,
        )
        self.runner = ToolRunner(
            emit=self.emit,
            # read at each call: memory and context hooks add to it once the run started
            llm_context=lambda: trajectory.llm_context or {},
            tool_context=tool_context,
            state_store=planner.state_store,
            artifact_store=planner.artifact_store,
            memory_key=run.memory_key,
            trace_id=run.trace_id,
            pause_enabled=settings.pause_enabled,
            observation_config=planner._observation_config,
            breakers=planner._breakers,
            on_artifacts=self._collect_artifacts,
            background=getattr(planner, "_background_tasks", None),
        )
        self._system: str | None = None
        #: a pause saved by `ReactPlanner.pause()` from inside a tool: the run ends with it
        #: when the tool's step is done
        self.pending_pause: PlannerPause | None = None

    # -- events ------------------------------------------------------------------------------

    async def emit(
        self,
        event_type: str,
        extra: Any,
        *,
        node_name: str | None = None,
        thought: str | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
        step: int | None = None,
    ) -> None:
        """Publish one event of this run (and keep it for the state store when the run has a
        trace id). `step` is the trajectory step it belongs to: by default the one in
        progress (the number of steps taken so far)."""
        event = PlannerEvent(
            event_type=event_type,
            ts=self.settings.time_source(),
            trajectory_step=len(self.run.trajectory.steps) if step is None else step,
            thought=thought,
            node_name=node_name,
            latency_ms=latency_ms,
            error=error,
            extra=dict(extra or {}),
        )
        if self.run.trace_id is not None and self.planner._keeps_events:
            self.run.events.append(event.to_payload())
        await publish(
            event,
            run_id=self.run.run_id,
            sinks=self.planner._sinks(),
            callback=self.planner.event_callback,
        )
        await publish_planner_event(event, trace_id=self.run.trace_id)

    # -- the run -----------------------------------------------------------------------------

    async def execute(
        self, *, resumed: str | None = None, user_input: str | None = None
    ) -> Outcome:
        """The run, observed as one `planner.run` unit of work (see `_observe`): its steps
        and tool calls are children of its span."""
        run = self.run
        attributes: dict[str, Any] = {
            "run_id": run.run_id,
            "resumed": resumed is not None,
            "query_length": len(run.trajectory.query),
        }
        async with observe("planner", "run", trace_id=run.trace_id, attributes=attributes) as unit:
            if unit.active and capture_content():
                unit.attributes["query"] = clip_content(run.trajectory.query)
            outcome = await self._execute(resumed=resumed, user_input=user_input)
            if unit.active:
                _record_outcome(unit, outcome)
                record_usage(unit, run.usage)
                unit.attributes["steps"] = len(run.trajectory.steps)
            return outcome

    async def _execute(self, *, resumed: str | None, user_input: str | None) -> Outcome:
        """The run's steps under its deadline. When the deadline passes, whatever is in flight
        is cancelled and awaited, and the run ends `budget_exhausted` (`deadline`)."""
        run = self.run
        left = run.usage.deadline_left_s(self.settings.budgets)
        with anyio.CancelScope(deadline=anyio.current_time() + left):
            try:
                if resumed is not None:
                    await self.emit("resume", {"user_input": user_input, "pause_ref": resumed})
                await self.catalog.prepare(run.trajectory.query)
                return await self._steps()
            except SteeringCancelled:
                raise
            except BaseException as exc:
                if not is_failure(exc):
                    raise  # a cancellation (the deadline's, the caller's), KeyboardInterrupt
                return await self.endings.crashed(exc)
        # Only the deadline scope's own cancellation gets here; the caller cancelling the run
        # propagates (after every branch in flight has been cancelled and awaited).
        run.usage.deadline_triggered = True
        interrupted = {"interrupted": run.in_flight} if run.in_flight else {}
        return await self.endings.out_of_budget("deadline", **interrupted)

    async def _steps(self) -> Outcome:
        run = self.run
        trajectory = run.trajectory
        settings = self.settings
        if not run.memory_loaded:
            # Read here, not in run(): a memory (or its store) that hangs is cut by the deadline.
            run.in_flight = "memory"
            patch = await self.planner._memory.llm_context_patch(run.memory_key)
            if patch:
                trajectory.llm_context = {**(trajectory.llm_context or {}), **patch}
            run.memory_loaded = True
        while True:
            run.in_flight = None
            if self.steering is not None:
                await apply_steering(self.steering, trajectory, self.emit)
            spent = run.usage.spent(settings.budgets)
            if spent is not None:
                return await self.endings.out_of_budget(spent)
            if len(trajectory.steps) >= settings.budgets.max_iters:
                return await self.endings.out_of_budget(
                    "hop_budget" if run.usage.hop_exhausted else "max_iters"
                )
            seq = run.next_action_seq()
            if enabled():
                async with observe(
                    "planner", "step", trace_id=run.trace_id, attributes={"action_seq": seq}
                ) as unit:
                    # This step's index in the trajectory: a finishing step records none,
                    # so counting after it would name the step before.
                    unit.attributes["step"] = len(trajectory.steps)
                    outcome = await self._step(seq)
                    if isinstance(outcome, PlannerFinish) and not outcome.ok:
                        unit.fail(str(outcome.metadata.get("error") or outcome.reason))
            else:
                outcome = await self._step(seq)
            if outcome is not None:
                return outcome

    async def _step(self, seq: int) -> Outcome | None:
        """One step: the model decides, and the decision is carried out. None: go on."""
        run = self.run
        trajectory = run.trajectory
        settings = self.settings
        await self.emit("step_start", {"action_seq": seq})
        started = settings.time_source()
        run.in_flight = "model call"
        try:
            action = await self.decider.decide(trajectory, self._inputs(seq))
        except ModelCallFailed as failed:
            return await self._model_failed(failed.cause)
        except RepairFailed as failed:
            return await self.endings.end(
                "repair_failed",
                {"errors": failed.errors, "last_reply": failed.last_reply},
                error=f"the model's replies were unusable {settings.repair_attempts + 1} "
                "times in a row",
            )
        run.thought = action.thought
        if action.is_finish:
            if has_pending(self.steering):
                trajectory.steps.append(
                    TrajectoryStep(
                        action=action,
                        observation="Finish deferred: new steering arrived; take it into "
                        "account, then answer.",
                    )
                )
                return None
            return await self._finish(action, seq)
        outcome = await self._act(action, seq)
        if outcome is not None:
            return outcome
        if self.pending_pause is not None:
            return self.pending_pause
        elapsed_ms = (settings.time_source() - started) * 1000.0
        await self.emit(
            "step_complete",
            {},
            thought=action.thought or None,
            node_name=action.next_node,
            latency_ms=elapsed_ms,
            step=max(len(trajectory.steps) - 1, 0),  # the step just taken
        )
        return None

    def _follow_catalog(self) -> None:
        """The planner's tools changed (`replace_tools`) since this run's catalog was
        built: build it again, so the prompt of the next step lists the new tools and a
        tool the model picks is looked up in the new list (a tool that appeared while the
        model was deciding is found; one that went is refused like an unknown tool)."""
        if self._catalog_generation != self.planner._catalog_generation:
            self._catalog_generation = self.planner._catalog_generation
            self.catalog = self._run_catalog()

    def _run_catalog(self) -> RunCatalog:
        planner = self.planner
        tool_context = self.run.trajectory.tool_context
        return RunCatalog(
            planner._specs,
            search=planner._tool_search,
            visibility=self._visibility,
            tool_context=tool_context if tool_context is not None else {},
            activated=self.run.activated,
            emit=self.emit,
        )

    def _inputs(self, seq: int) -> DecisionInputs:
        planner = self.planner
        self._follow_catalog()
        records = tool_records(
            self.catalog.prompt_specs(), planner._tool_examples, planner._record_cache
        )
        system = build_system_prompt(
            planner._templates,
            tool_records=records,
            extras=self.catalog.prompt_extras(self.run.trajectory.query),
            planning_hints=planner._hints.prompt_text(),
            system_prompt_extra=self.settings.system_prompt_extra,
            parallel=True,
            join_strategies=planner._joins.names(),
            guidance=self.guidance.lines(),
            constraints=self.endings.constraint_lines(),
            final_response_schema=planner._final_response_schema,
        )
        self._system = system
        return DecisionInputs(
            system=system,
            tool_names=self.catalog.callable_names(),
            join_strategies=planner._joins.names(),
            action_seq=seq,
            tool_schemas={
                record["name"]: record["args_schema"]
                for record in records
                if isinstance(record.get("args_schema"), Mapping)
            },
            answer_schema=planner._final_response_schema,
            max_parallel=self.settings.absolute_max_parallel,
        )

    async def _model_failed(self, exc: BaseException) -> PlannerFinish:
        if not isinstance(exc, LLMError):
            # Clients report failures as LLMError; anything else is likely a client bug, so
            # its traceback goes to the log. The run ends the same way.
            name = type(exc).__name__
            logger.error("the LLM client raised %s, not an LLMError", name, exc_info=exc)
        self.run.error_ending = True
        return await self.endings.end(
            "no_path",
            self.run.trajectory.last_observation(),
            error=f"model call failed: {describe_failure(exc)}",
        )

    # -- acting ------------------------------------------------------------------------------

    async def _error_step(
        self,
        action: PlannerAction,
        error: str,
        *,
        kind: Literal["unknown_tool", "invalid_args"] | None = None,
        tool: str | None = None,
        valid: Sequence[str] | None = None,
    ) -> None:
        """A mistake the model can fix: recorded as a step it sees, and (for repeated kinds)
        guidance in the next prompt."""
        self.run.trajectory.steps.append(TrajectoryStep(action=action, error=error))
        if kind is not None:
            for line in self.guidance.record(kind=kind, tool=tool, detail=error, valid=valid):
                await self.emit("guidance_added", {"guidance": line, "kind": kind})

    def _hops_left(self) -> int | None:
        return self.run.usage.hops_left(self.settings.budgets)

    async def _no_hops(self, action: PlannerAction, needed: int) -> bool:
        left = self._hops_left()
        if left is None or needed <= left:
            return False
        self.run.usage.hop_exhausted = True
        budget = self.settings.budgets.hop_budget
        await self._error_step(
            action,
            f"hop budget exhausted: {budget} tool calls allowed, {self.run.usage.hops} used, "
            f"this action needs {needed}; answer now with final_response",
        )
        return True

    async def _act(self, action: PlannerAction, seq: int) -> Outcome | None:
        verdict = self.planner._hints.check(
            action,
            self.run.trajectory.hint_state,
            absolute_max_parallel=self.settings.absolute_max_parallel,
        )
        if verdict.error is not None:
            await self._error_step(action, verdict.error)
            return None
        if verdict.warning is not None:
            await self.emit("planning_hint_warning", {"warning": verdict.warning})
        if action.is_parallel:
            return await self._parallel(action, seq)
        return await self._single(action, seq)

    async def _resolve(self, name: str) -> tuple[NodeSpec | None, str | None]:
        self._follow_catalog()
        spec = await self.catalog.resolve(name)
        if spec is not None:
            return spec, None
        names = [
            n for n in self.catalog.callable_names() if n not in ("final_response", "parallel")
        ]
        choices = ", ".join(sorted(names)) or "(no tools)"
        return None, f"tool '{name}' is not in the catalog. Choose one of: {choices}."

    async def _checked_args(
        self, spec: NodeSpec, action: PlannerAction, args: dict[str, Any]
    ) -> str | None:
        errors = spec.argument_errors(args)
        if not errors:
            return None
        return f"invalid arguments for tool '{spec.name}': " + "; ".join(errors)

    async def _single(self, action: PlannerAction, seq: int) -> Outcome | None:
        run = self.run
        name = action.next_node
        spec, problem = await self._resolve(name)
        if spec is None:
            valid = [*self.catalog.callable_names(), "final_response", "parallel"]
            await self._error_step(
                action, problem or "", kind="unknown_tool", tool=name, valid=valid
            )
            return None
        args = dict(action.args)
        problem = await self._checked_args(spec, action, args)
        if problem is not None:
            count = run.arg_failures.get(name, 0) + 1
            run.arg_failures[name] = count
            self.endings.counters["args_invalid_count"] += 1
            await self.emit("planner_args_invalid", {"tool": name, "error": problem[:500]})
            fields = list(spec.args_schema.get("properties", {}))
            await self._error_step(action, problem, kind="invalid_args", tool=name, valid=fields)
            if count >= self.settings.max_consecutive_arg_failures:
                return await self.endings.arguments_failed(name, problem, spec)
            return None
        if await self._no_hops(action, 1):
            return None
        run.in_flight = f"tool {name}"
        run.acted = True
        result = await race_cancel(
            self.steering,
            lambda: self.runner.call(spec, args, call_id=f"call_{seq}_0", action_seq=seq),
        )
        run.usage.hops += 1
        step = TrajectoryStep(
            action=action,
            observation=result.observation if result.ok or result.pause else None,
            llm_observation=result.llm_observation,
            error=result.error,
            failure=result.failure,
            streams=result.streams or None,
        )
        run.trajectory.steps.append(step)
        if result.pause is not None:
            return await self.pause(result.pause.reason, result.pause.payload)
        if result.ok:
            run.arg_failures[name] = 0
            self.planner._hints.record_progress(name, run.trajectory.hint_state)
        return None

    async def _parallel(self, action: PlannerAction, seq: int) -> Outcome | None:
        run = self.run
        try:
            calls = action.parallel_steps()
            join = action.parallel_join()
        except ValidationError as exc:
            await self._error_step(
                action, f"parallel: the plan is malformed: {exc.errors()[0]['msg']}"
            )
            return None
        if not calls:
            await self._error_step(action, "parallel: args.steps must list at least one call")
            return None
        if len(calls) > self.settings.absolute_max_parallel:
            await self._error_step(
                action,
                f"parallel: {len(calls)} steps, more than the "
                f"{self.settings.absolute_max_parallel} allowed at once; split the work",
            )
            return None
        problems: list[str] = []
        resolved: list[tuple[NodeSpec, dict[str, Any]]] = []
        for call in calls:
            spec, problem = await self._resolve(call.node)
            if spec is None:
                problems.append(problem or "")
                continue
            arg_problem = await self._checked_args(spec, action, dict(call.args))
            if arg_problem is not None:
                problems.append(arg_problem)
                continue
            resolved.append((spec, dict(call.args)))
        join_tool: tuple[NodeSpec, ParallelJoin] | None = None
        strategy = None
        if isinstance(join, ParallelJoin):
            spec, problem = await self._resolve(join.node)
            if spec is None:
                problems.append(f"join: {problem}")
            else:
                join_tool = (spec, join)
        else:
            try:
                strategy = self.planner._joins.named_in(action) or self.planner._joins.get(None)
            except Exception as exc:  # ActionError: an unknown strategy name
                problems.append(str(exc))
        if problems:
            await self._error_step(
                action, "parallel plan rejected, nothing ran: " + " | ".join(problems)
            )
            return None
        if await self._no_hops(action, len(resolved) + (1 if join_tool else 0)):
            return None
        run.in_flight = "parallel tools " + ", ".join(spec.name for spec, _ in resolved)
        run.acted = True
        outcome = await race_cancel(
            self.steering,
            lambda: run_parallel(
                self.runner,
                resolved,
                action=action,
                action_seq=seq,
                join_tool=join_tool,
                join_strategy=strategy,
                max_concurrent=self.settings.max_concurrent_branches,
            ),
        )
        run.usage.hops += outcome.hops
        for branch in outcome.observation.get("branches", []):
            if "observation" in branch:
                self.planner._hints.record_progress(branch["node"], run.trajectory.hint_state)
        run.trajectory.steps.append(
            TrajectoryStep(
                action=action,
                observation=outcome.observation,
                llm_observation=outcome.llm_observation,
                streams=outcome.streams or None,
            )
        )
        if outcome.pause is not None:
            return await self.pause(outcome.pause.reason, outcome.pause.payload)
        return None

    def _collect_artifacts(self, tool: str, fields: dict[str, Any]) -> None:
        self.run.trajectory.artifacts.setdefault(tool, {}).update(fields)

    # -- finishing ---------------------------------------------------------------------------

    async def _finish(self, action: PlannerAction, seq: int) -> PlannerFinish:
        run = self.run
        planner = self.planner
        settings = self.settings
        answer = action.answer
        text = answer if isinstance(answer, str) else str(answer)
        if settings.final_response_model is not None:
            run.in_flight = "structured answer"
            await ensure_structured(
                action,
                run.trajectory,
                model=settings.final_response_model,
                retries=settings.final_response_retries,
                client=settings.client,
                system=self._system or "",
                templates=planner._templates,
                emit=self.emit,
                account=self.decider.account,
                action_seq=seq,
                timeout_s=settings.llm_timeout_s,
            )
        extra: dict[str, Any] = {}
        reflection = planner._reflection
        if reflection is not None and reflection.enabled:
            run.in_flight = "reflection"
            hops_left = self._hops_left
            outcome = await reflect(
                reflection,
                client=planner._reflection_client,
                query=run.trajectory.query,
                answer=text,
                trajectory=run.trajectory,
                templates=planner._templates,
                emit=self.emit,
                can_revise=lambda: (
                    (hops_left() is None or (hops_left() or 0) > 0)
                    and len(run.trajectory.steps) < settings.budgets.max_iters
                ),
                main_client=settings.client,
                system_prompt=self._system,
                timeout_s=settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
                account=self.decider.account,
            )
            text = outcome.answer
            extra["reflection"] = outcome.metadata
            if outcome.clarification is not None:
                extra["confidence"] = outcome.clarification.confidence
        run.settled = True
        run.answer_action_seq = seq
        payload = build_payload(action, run.trajectory, text)
        return await self.endings.end(
            "answer_complete", payload, thought=action.thought, answer=text, **extra
        )

    # -- pausing -----------------------------------------------------------------------------

    async def pause(self, reason: str, payload: Any) -> PlannerPause | PlannerFinish:
        """Save the run under a new token and return the pause (PenguiFlow's reasons: a join
        strategy's own reason becomes `approval_required`, kept in the payload)."""
        run = self.run
        planner = self.planner
        body = dict(payload or {})
        if reason not in _PAUSE_REASONS:
            body.setdefault("pause_kind", reason)
            reason = "approval_required"
        token = secrets.token_hex(16)  # 128 random bits: the pause's bearer secret
        run.settled = True
        run.usage.freeze_clock()
        state = paused_state(run, reason=reason, payload=body, budgets=self.settings.budgets)
        # Shielded from the deadline: a pause whose state was saved must reach the caller with
        # its token, or the saved state could never be resumed. Bounded, for a store that
        # hangs; a pause not saved in time ends the run instead (an unknown token is useless).
        with anyio.move_on_after(SHIELD_GRACE_S, shield=True) as saving:
            await planner.state_store.save_planner_state(token, state)
        if saving.cancelled_caught:
            run.error_ending = True
            return await self.endings.end(
                "error",
                run.trajectory.last_observation(),
                error=f"saving the paused state took over {SHIELD_GRACE_S:g}s; the run "
                "cannot be resumed",
            )
        with anyio.move_on_after(SHIELD_GRACE_S, shield=True):
            # Events never carry the token (it would reach every sink and log): a digest.
            await self.emit(
                "pause", {"reason": reason, "payload": body, "pause_ref": token_ref(token)}
            )
            await self.endings.persist()
            await record_pause(
                token=token,
                ref=token_ref(token),
                reason=reason,
                payload=body,
                tool_context=run.trajectory.tool_context,
                memory_key=run.memory_key,
                trace_id=run.trace_id,
                store=planner.state_store,
            )
        return PlannerPause(reason=reason, payload=body, resume_token=token)  # type: ignore[arg-type]
