"""The JSON action contract between the planner and the model, and how a run ends."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from penguiflow.errors import ConfigurationError

__all__ = [
    "FinishReason",
    "ParallelCall",
    "PlannerAction",
    "PlannerFinish",
    "PlannerPause",
]


class ParallelCall(BaseModel):
    node: str
    args: dict[str, Any] = Field(default_factory=dict)


class PlannerAction(BaseModel):
    """One step the model chooses: call `next_node` with `args`; run `plan` in parallel and
    join the results with `join`; or finish (`next_node` null, `args.answer` the answer)."""

    thought: str = ""
    next_node: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    plan: list[ParallelCall] | None = None
    join: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PlannerAction:
        if self.plan is not None and self.next_node is not None:
            raise ConfigurationError("give either next_node or plan, not both")
        if self.plan is not None and not self.plan:
            raise ConfigurationError("plan must list at least one call")
        return self

    @property
    def is_finish(self) -> bool:
        return self.next_node is None and self.plan is None


FinishReason = Literal[
    "answer_complete",
    "no_path",
    "max_iters",
    "hop_budget",
    "deadline",
    "token_budget",
    "cost_budget",
    "repair_failed",
]


class PlannerFinish(BaseModel):
    """How a run ended. `reason` is `answer_complete` only when the model answered; every
    other reason carries a best-effort `payload` built from what was observed."""

    reason: FinishReason
    payload: Any = None
    thought: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason == "answer_complete"


class PlannerPause(BaseModel):
    """The run is waiting for a human; `await planner.resume(token, decision)` continues it."""

    token: str
    reason: str
    payload: dict[str, Any] = Field(default_factory=dict)
