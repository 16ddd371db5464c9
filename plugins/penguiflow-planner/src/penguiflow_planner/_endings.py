"""How a run ends: the `PlannerFinish` and its metadata, the last events, what is saved.

The metadata has PenguiFlow's keys (`reason`, `thought`, `steps`, `step_count`, `artifacts`,
`sources`, `llm_context`, `tool_context`, `cost`, `constraints`, `trajectory_metadata`, the
repair counters, `answer_action_seq`, `error` for failures) and ours (`finish_reason`, the
precise reason; `run_id`; `usage`). A finish is remembered by the memory (as PenguiFlow does,
for every finish), and the run's trajectory and events are saved under its trace id when the
state store keeps them, before the finish is returned (a caller that reads them right after
finds them).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio

from penguiflow.catalog import NodeSpec
from penguiflow.errors import describe_exception

from ._events import RunEmitFn
from ._failures import describe_failure
from ._results import FinishReason, PlannerFinish, public_reason
from ._run import RunState
from ._trajectory import json_copy

if TYPE_CHECKING:
    from ._planner import ReactPlanner

__all__ = ["Endings"]

logger = logging.getLogger("penguiflow.planner")

_SHIELD_GRACE_S = 5.0
_COUNTERS = (
    "validation_failures_count",
    "repair_attempts",
    "args_invalid_count",
    "args_suspect_count",
    "autofill_rejection_count",
    "arg_fill_success_count",
    "arg_fill_failure_count",
    "finish_repair_success_count",
    "finish_repair_failure_count",
)


def _json_safe(value: Any) -> Any:
    """A JSON copy of a mapping, key by key: keys whose values are not JSON are left out
    (a tool context holds clients and callbacks)."""
    if not isinstance(value, dict):
        return json_copy(value)
    kept: dict[str, Any] = {}
    for key, item in value.items():
        copied = json_copy(item)
        if copied is not None or item is None:
            kept[str(key)] = copied
    return kept


#: PenguiFlow's `metadata["thought"]` when the model gave none.
_DEFAULT_THOUGHT = "planning next step"
#: The thought of a run that a budget ended (PenguiFlow's wording for `max_iters`).
_BUDGET_THOUGHTS: dict[str, str] = {
    "max_iters": "iteration limit reached",
    "hop_budget": "hop budget exhausted: no tool calls left",
    "deadline": "deadline reached before an answer",
    "token_budget": "token budget exhausted",
    "cost_budget": "cost budget exhausted",
}


class Endings:
    """Builds the endings of one run."""

    def __init__(self, planner: ReactPlanner, run: RunState, emit: RunEmitFn) -> None:
        self.planner = planner
        self.run = run
        self.emit = emit
        self.counters: Counter[str] = Counter({name: 0 for name in _COUNTERS})

    def constraint_lines(self) -> list[str]:
        """The budgets, as the model is told them."""
        budgets = self.planner._settings.budgets
        usage = self.run.usage
        lines = [f"at most {budgets.max_iters} steps ({len(self.run.trajectory.steps)} used)"]
        if budgets.hop_budget is not None:
            lines.append(f"at most {budgets.hop_budget} tool calls ({usage.hops} used)")
        if budgets.deadline_s is not None:
            left = max(usage.deadline_left_s(budgets), 0.0)
            lines.append(f"about {left:.0f} seconds left")
        return lines

    async def out_of_budget(self, reason: FinishReason, **extra: Any) -> PlannerFinish:
        with anyio.move_on_after(_SHIELD_GRACE_S, shield=True):  # decided: see end()
            await self.emit("budget_exhausted", {"finish_reason": reason, **extra})
        best = self.run.trajectory.last_observation()
        return await self.end(
            reason,
            best,
            thought=_BUDGET_THOUGHTS.get(reason, f"budget exhausted: {reason}"),
            error=f"budget exhausted: {reason}",
            **extra,
        )

    async def crashed(self, exc: BaseException) -> PlannerFinish:
        """The ending of a run that something failed in unexpectedly (a bug, here or in a
        strategy, a store or an observer): reason `error`, the traceback logged."""
        run = self.run
        logger.error("planner run %s failed unexpectedly", run.run_id, exc_info=exc)
        run.error_ending = True
        where = f" during {run.in_flight}" if run.in_flight else ""
        return await self.end(
            "error",
            run.trajectory.last_observation(),
            error=f"the run failed{where}: {describe_failure(exc)}",
        )

    async def arguments_failed(self, tool: str, problem: str, spec: NodeSpec) -> PlannerFinish:
        """The model could not give `tool` arguments that fit, `max_consecutive_arg_failures`
        times in a row: the run ends asking the user for what is missing."""
        missing: list[str] = []
        if spec.args_model is not None:
            missing = [
                name for name, info in spec.args_model.model_fields.items() if info.is_required()
            ]
        payload = {
            "requires_followup": True,
            "failure_reason": "invalid_arguments",
            "tool": tool,
            "clarification": f"To use {tool}, I need valid values for: "
            f"{', '.join(missing) or 'its arguments'}.",
            "missing_fields": missing,
            "last_error": problem,
        }
        return await self.end(
            "no_path", payload, error=f"the arguments for {tool} stayed invalid: {problem}"
        )

    async def end(
        self,
        reason: FinishReason,
        payload: Any,
        *,
        thought: str = "",
        error: str | None = None,
        answer: str | None = None,
        **extra: Any,
    ) -> PlannerFinish:
        run = self.run
        planner = self.planner
        trajectory = run.trajectory
        usage = run.usage
        public = public_reason(reason)
        metadata: dict[str, Any] = {
            "reason": public,
            "finish_reason": reason,
            "thought": thought or run.thought or _DEFAULT_THOUGHT,
            "steps": trajectory.to_history(),
            "step_count": len(trajectory.steps),
            "artifacts": json_copy(trajectory.artifacts) or {},
            "sources": json_copy(trajectory.sources) or [],
            "llm_context": _json_safe(dict(trajectory.llm_context or {})),
            "tool_context": _json_safe(dict(trajectory.tool_context or {})),
            "cost": usage.cost_report(),
            "constraints": usage.constraints_report(planner._settings.budgets),
            "trajectory_metadata": json_copy(trajectory.metadata) or {},
            **dict(self.counters),
            "consecutive_arg_failures": max(run.arg_failures.values(), default=0),
            "salvage_used": False,
            "run_id": run.run_id,
            "usage": usage.model_dump(exclude={"elapsed_before_s"})
            | {"elapsed_s": round(usage.elapsed_s(), 3)},
            **extra,
        }
        # PenguiFlow's: the decision that answered, or else the last decision taken.
        metadata["answer_action_seq"] = (
            run.answer_action_seq if run.answer_action_seq is not None else run.action_seq
        )
        if error is not None:
            metadata["error"] = error
        memory_error = await self._remember(payload, answer)
        if memory_error is not None:
            metadata["memory_error"] = memory_error
        # The ending is decided: the deadline must not cut its report in half (a finish event
        # sent twice, or a first one lost), so it is shielded from the deadline scope; for
        # `_SHIELD_GRACE_S` at most, so that an observer that hangs cannot hold the run.
        with anyio.move_on_after(_SHIELD_GRACE_S, shield=True):
            finish_extra: dict[str, Any] = {
                "reason": public,
                "finish_reason": reason,
                "cost": usage.cost_report(),
            }
            if run.answer_action_seq is not None:
                finish_extra["answer_action_seq"] = run.answer_action_seq
            await self.emit("finish", finish_extra, thought=metadata["thought"], error=error)
            await self.persist()
        return PlannerFinish(reason=public, payload=payload, metadata=metadata)

    async def _remember(self, payload: Any, answer: str | None) -> str | None:
        """Add the finished turn to memory (PenguiFlow does so for every finish); a memory that
        fails is reported in the metadata, never fatal."""
        run = self.run
        memory = self.planner._memory
        if not memory.enabled or run.memory_key is None:
            return None
        if answer is None:
            if payload is None:
                return None
            answer = payload if isinstance(payload, str) else json.dumps(payload, default=str)
        tools = [step.action.next_node for step in run.trajectory.steps if step.error is None]
        observations = [s.observation for s in run.trajectory.steps if s.error is None]
        try:
            with anyio.move_on_after(_SHIELD_GRACE_S, shield=True):
                await memory.record_turn(
                    run.memory_key,
                    user_message=run.trajectory.query,
                    assistant_response=answer,
                    tools_invoked=tools,
                    observations=observations,
                    reasoning=run.thought or None,
                )
        except Exception as exc:  # the answer stands; that it was not remembered is reported
            logger.warning("the answer was not remembered: %s", describe_exception(exc))
            return describe_failure(exc)
        return None

    async def persist(self) -> None:
        """Save the run's trajectory and its events under its trace id, when the state store
        keeps them; a store that fails is logged, never fatal."""
        run = self.run
        store = self.planner.state_store
        if run.trace_id is None:
            return
        try:
            save_trajectory = getattr(store, "save_trajectory", None)
            if callable(save_trajectory):
                await save_trajectory(run.trace_id, run.trajectory.serialise())
            save_event = getattr(store, "save_planner_event", None)
            if callable(save_event):
                events, run.events = run.events, []
                for event in events:
                    await save_event(run.trace_id, json_copy(event) or {})
        except Exception as exc:
            logger.warning(
                "saving run %s (trace %s) failed: %s",
                run.run_id,
                run.trace_id,
                describe_exception(exc),
            )
