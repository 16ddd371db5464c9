"""How a run ends: a `PlannerFinish` or a `PlannerPause` (PenguiFlow 3.11's shapes).

`PlannerFinish.reason` is one of PenguiFlow's three reasons; `metadata["finish_reason"]` says
more precisely why (`FinishReason`): which budget ran out, whether the model's replies stayed
unusable, whether something failed. A finish that answered carries `FinalPayload.model_dump()`
as its payload.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "ClarificationResponse",
    "FinalPayload",
    "FinishReason",
    "PlannerFinish",
    "PlannerPause",
    "PlannerPauseReason",
    "Source",
    "SuggestedAction",
    "public_reason",
    "token_ref",
]

PlannerPauseReason = Literal[
    "approval_required", "await_input", "external_event", "constraints_conflict"
]
"""Why a run waits for a human: a decision to approve, input to give, something outside to
happen (a sign-in, a webhook), or constraints that conflict."""

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
"""Why a run ended, precisely (`PlannerFinish.metadata["finish_reason"]`).
`answer_complete`: the model answered. A spent budget: `max_iters`, `hop_budget`, `deadline`,
`token_budget`, `cost_budget`. `no_path`: the model call failed, or the run could not go on
(arguments the model could not fix). `repair_failed`: the model's replies stayed unusable.
`error`: something in the run failed unexpectedly (a bug in the planner, a join strategy, a
memory strategy or a state store); `metadata["error"]` says what, and the traceback is logged."""

#: PenguiFlow's reason for each of ours. Running out of iterations is `no_path` there (the
#: model never found an answer), running out of hops or time `budget_exhausted`.
_PUBLIC_REASONS: dict[str, Literal["answer_complete", "no_path", "budget_exhausted"]] = {
    "answer_complete": "answer_complete",
    "no_path": "no_path",
    "max_iters": "no_path",
    "hop_budget": "budget_exhausted",
    "deadline": "budget_exhausted",
    "token_budget": "budget_exhausted",
    "cost_budget": "budget_exhausted",
    "repair_failed": "no_path",
    "error": "no_path",
}


def public_reason(
    reason: FinishReason,
) -> Literal["answer_complete", "no_path", "budget_exhausted"]:
    """PenguiFlow's reason for one of ours."""
    return _PUBLIC_REASONS[reason]


class Source(BaseModel):
    """Where part of an answer came from."""

    title: str
    url: str | None = None
    snippet: str | None = None
    relevance_score: float | None = None


class SuggestedAction(BaseModel):
    """Something the user could do next, for a UI to offer."""

    action_id: str
    label: str
    params: dict[str, Any] = Field(default_factory=dict)


class FinalPayload(BaseModel):
    """The payload of a finish that answered: the answer's text and what came with it.
    Fields of `final_response` that are none of these are kept in `extra`."""

    raw_answer: str
    structured: dict[str, Any] | None = None
    artifacts: dict[str, Any] = Field(default_factory=dict)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    sources: list[Source] = Field(default_factory=list)
    route: str | None = None
    suggested_actions: list[SuggestedAction] = Field(default_factory=list)
    requires_followup: bool = False
    warnings: list[str] = Field(default_factory=list)
    language: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class ClarificationResponse(BaseModel):
    """What reflection gives the user when no revision reached the quality threshold: what
    was tried, what to clarify, what to do next."""

    text: str
    confidence: Literal["satisfied", "unsatisfied"]
    attempted_approaches: list[str] = Field(default_factory=list)
    clarifying_questions: list[str] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    reflection_score: float | None = None
    revision_attempts: int | None = None


class PlannerFinish(BaseModel):
    """A run's ending. `reason` is PenguiFlow's (`answer_complete`, `no_path`,
    `budget_exhausted`); `metadata["finish_reason"]` is ours, more precise (`FinishReason`).
    `metadata` also has `steps`, `step_count`, `cost`, `constraints` and, for endings that are
    failures, `error`."""

    reason: Literal["answer_complete", "no_path", "budget_exhausted"]
    payload: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the model answered."""
        return self.reason == "answer_complete"

    @property
    def finish_reason(self) -> FinishReason:
        """Our precise reason (`metadata["finish_reason"]`, else `reason`)."""
        found = self.metadata.get("finish_reason", self.reason)
        return found if found in _PUBLIC_REASONS else self.reason  # type: ignore[return-value]


class PlannerPause(BaseModel):
    """The run waits for a human; `await planner.resume(resume_token, user_input)` goes on.

    The token is a bearer secret for the paused run (bound to its owner, see `ReactPlanner`):
    give it only to who may decide. Events and error messages never carry it; they carry
    `ref`, a digest of it that cannot be turned back into the token."""

    reason: PlannerPauseReason
    payload: dict[str, Any] = Field(default_factory=dict)
    resume_token: str

    @property
    def ref(self) -> str:
        """The reference the `pause` and `resume` events carry as `pause_ref`."""
        return token_ref(self.resume_token)


def token_ref(token: str) -> str:
    """A short, non-reversible reference to a pause token, safe to log: the first 16 hex
    digits of its SHA-256. A token is 128 random bits, so the reference cannot be inverted,
    and 64 bits tell the pauses of a deployment apart."""
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    return f"pause-{digest[:16]}"
