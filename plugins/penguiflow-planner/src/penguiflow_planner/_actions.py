"""The JSON action contract between the planner and the model, and how a run ends."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from penguiflow.errors import ConfigurationError

__all__ = [
    "FinishReason",
    "ParallelCall",
    "PlannerAction",
    "PlannerFinish",
    "PlannerPause",
    "token_ref",
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
    "error",
]
"""Why a run ended. `answer_complete`: the model answered. A spent budget: `max_iters`,
`hop_budget`, `deadline`, `token_budget`, `cost_budget`. `no_path`: the model call failed
(the client raised). `repair_failed`: the model's replies stayed unusable `max_repairs`
times in a row. `error`: something in the run failed unexpectedly (a bug in the planner, a
join strategy, a memory strategy or a state store); `metadata["error"]` says what, and the
traceback is logged."""


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
    """The run is waiting for a human; `await planner.resume(token, decision)` continues it.

    The token is a bearer secret for the paused run (with its owner, see `ReactPlanner`):
    give it only to who may decide. Events and error messages never carry it; they carry
    `ref`, a digest of it that cannot be turned back into the token."""

    token: str
    reason: str
    payload: dict[str, Any] = Field(default_factory=dict)

    @property
    def ref(self) -> str:
        """The reference that the `pause` and `resume` events carry as `pause_ref`."""
        return token_ref(self.token)


def token_ref(token: str) -> str:
    """A short, non-reversible reference to a pause token, safe to log: the first 16 hex
    digits of its SHA-256. A token is 128 random bits, so the reference cannot be inverted,
    and 64 bits tell the pauses of a deployment apart."""
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    return f"pause-{digest[:16]}"
