"""Reflection (PenguiFlow 3.11's models and loop): a critic scores each final answer; a weak
one is revised by the planner's model from the critique, and one still weak after the last
revision is replaced by a clarification that tells the user what was tried and what would help.

The loop, for an answer: critique (a JSON-schema reply, `ReflectionCritique`); passed (or a
score at the threshold): done. Otherwise, if revisions are left and `can_revise()` says the
run's budgets allow one, the model writes a revised answer from the critique and it is
critiqued again; after `max_revisions` revisions a still-failing answer becomes a
`ClarificationResponse`. Events: `reflection_critique` per critique, `reflection_revision` per
revision (ours), `reflection_clarification_generated`; `reflection_failed` (ours) when the
critic could not be used. A critic that fails (raises, times out, replies with something that
is not a critique) is skipped: the answer stands and the failure is logged; reflection never
ends a run, except when the run itself is cancelled.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from ._actions import FINAL_RESPONSE, SPECIAL_NODES, PlannerAction
from ._events import EmitFn
from ._failures import UnusableReplyError, describe_failure, is_failure
from ._llm_calls import call_client
from ._prompt import build_messages, compact_json, observation_text
from ._results import ClarificationResponse
from ._trajectory import Trajectory, TrajectoryStep
from .prompts import PromptTemplates

__all__ = [
    "ReflectionConfig",
    "ReflectionCriteria",
    "ReflectionCritique",
    "ReflectionOutcome",
    "reflect",
]

logger = logging.getLogger("penguiflow.planner")

#: steps of the run the critic is shown (the latest), and characters of each result
_CRITIC_STEPS = 5
_CRITIC_RESULT_CHARS = 300
#: characters of the critic's feedback carried by a `reflection_critique` event (PenguiFlow's)
_EVENT_FEEDBACK_CHARS = 200


class ReflectionCriteria(BaseModel):
    """What the critic judges an answer on (PenguiFlow's three criteria)."""

    completeness: str = "Addresses all parts of the query"
    accuracy: str = "Factually correct based on observations"
    clarity: str = "Well-explained and coherent"


class ReflectionCritique(BaseModel):
    """The critic's verdict on an answer."""

    score: float = Field(ge=0.0, le=1.0)
    passed: bool
    feedback: str
    issues: list[str] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)


class ReflectionConfig(BaseModel):
    """Reflection settings (PenguiFlow's): off by default; an answer passes when the critic
    says so or scores it at least `quality_threshold`; at most `max_revisions` revisions;
    `use_separate_llm` critiques with `ReactPlanner(reflection_llm=...)` instead of the
    planner's model."""

    enabled: bool = False
    criteria: ReflectionCriteria = Field(default_factory=ReflectionCriteria)
    quality_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    max_revisions: int = Field(default=2, ge=1, le=10)
    use_separate_llm: bool = False


@dataclass
class ReflectionOutcome:
    """What reflection made of an answer.

    `answer` is the accepted answer (revised or not), or the clarification's text when one
    replaced it; `metadata` is what goes in `PlannerFinish.metadata["reflection"]` (PenguiFlow's
    `score`, `revisions`, `passed`, `feedback`; `confidence: "unsatisfied"` when a
    clarification replaced the answer; `skipped` when no critique could be had);
    `revised_args` the `final_response` args of the accepted revision (None without one);
    `critic_calls`, `main_calls` and `cost_usd` what the model calls were; `steps_added` the
    indexes of the revision steps added to the trajectory."""

    answer: str
    critiques: list[ReflectionCritique]
    revisions: int
    clarification: ClarificationResponse | None
    metadata: dict[str, Any]
    revised_args: dict[str, Any] | None = None
    critic_calls: int = 0
    main_calls: int = 0
    cost_usd: float = 0.0
    steps_added: list[int] = field(default_factory=list)


def _schema_format(name: str, model: type[BaseModel]) -> dict[str, Any]:
    """PenguiFlow's `response_format` for a JSON-schema reply."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": model.model_json_schema()},
    }


class _RevisedAnswer(BaseModel):
    answer: str


class _RevisionAction(BaseModel):
    next_node: str
    args: _RevisedAnswer


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in a reply (bare, or inside a code fence or other text), or None."""
    text = text.strip()
    candidates = [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            found = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def _bullets(items: Sequence[str], empty: str = "(none)") -> str:
    return "\n".join(f"- {item}" for item in items) if items else empty


def _steps_text(trajectory: Trajectory) -> str:
    """The run's latest steps as the critic sees them: each tool, and its result or error."""
    lines = []
    for step in trajectory.steps[-_CRITIC_STEPS:]:
        node = step.action.next_node
        if step.error is not None:
            outcome = f"failed: {observation_text(step.error, _CRITIC_RESULT_CHARS)}"
        else:
            shown = step.llm_observation if step.llm_observation is not None else step.observation
            outcome = f"returned {observation_text(shown, _CRITIC_RESULT_CHARS)}"
        lines.append(f"- {node}: {outcome}")
    return "\n".join(lines) if lines else "(no tools were called)"


def _tools_tried(trajectory: Trajectory) -> list[str]:
    tried: list[str] = []
    for step in trajectory.steps:
        if step.action.is_parallel:
            names = [call.node for call in step.action.parallel_steps()]
        elif step.action.next_node not in SPECIAL_NODES:
            names = [step.action.next_node]
        else:
            names = []
        tried += [name for name in names if name not in tried]
    return tried


class _Reflection:
    """One `reflect()` call's state: the clients, the counters, the outcome being built."""

    def __init__(
        self,
        config: ReflectionConfig,
        *,
        critic: Any,
        writer: Any,
        templates: PromptTemplates,
        timeout_s: float | None,
        max_retries: int,
        account: Callable[..., None] | None,
        outcome: ReflectionOutcome,
    ) -> None:
        self.config = config
        self.critic = critic
        self.writer = writer
        self.templates = templates
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.account = account
        self.outcome = outcome

    async def ask(
        self, purpose: str, messages: list[dict[str, str]], response_format: Mapping[str, Any]
    ) -> str:
        client = self.critic if purpose == "reflection" else self.writer
        reply = await call_client(
            client,
            messages,
            response_format=response_format,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
        )
        if purpose == "reflection":
            self.outcome.critic_calls += 1
        else:
            self.outcome.main_calls += 1
        self.outcome.cost_usd += reply.cost_usd or 0.0
        if self.account is not None:
            self.account(reply, purpose=purpose)
        return reply.text

    async def critique(self, query: str, answer: str, trajectory: Trajectory) -> ReflectionCritique:
        criteria = self.config.criteria
        render = self.templates.render
        messages = [
            {
                "role": "system",
                "content": render(
                    "critique_system",
                    completeness=criteria.completeness,
                    accuracy=criteria.accuracy,
                    clarity=criteria.clarity,
                    threshold=f"{self.config.quality_threshold:g}",
                ),
            },
            {
                "role": "user",
                "content": render(
                    "critique_user", query=query, steps=_steps_text(trajectory), answer=answer
                ),
            },
        ]
        text = await self.ask(
            "reflection", messages, _schema_format("reflection_critique", ReflectionCritique)
        )
        found = _json_object(text)
        if found is None:
            raise UnusableReplyError(f"the critic's reply is not a JSON object: {text[:120]!r}")
        critique = ReflectionCritique.model_validate(found)
        if critique.score >= self.config.quality_threshold and not critique.passed:
            # PenguiFlow's rule: a score at the threshold passes, even when the critic said no.
            critique.passed = True
        return critique

    async def revise(
        self,
        answer: str,
        critique: ReflectionCritique,
        trajectory: Trajectory,
        system_prompt: str,
        response_format: Mapping[str, Any] | None,
    ) -> tuple[str, dict[str, Any]] | None:
        """The model's revised answer and its `final_response` args, or None (logged) when its
        reply holds no answer."""
        request = self.templates.render(
            "revision",
            answer=answer,
            score=f"{critique.score:.2f}",
            feedback=critique.feedback or "(none)",
            issues=_bullets(critique.issues),
            suggestions=_bullets(critique.suggestions, "- address the feedback above"),
        )
        messages = [
            *build_messages(system_prompt, trajectory, self.templates),
            {"role": "user", "content": request},
        ]
        text = await self.ask(
            "main", messages, response_format or _schema_format("planner_action", _RevisionAction)
        )
        found = _json_object(text) or {}
        inner = found.get("args")
        args: dict[str, Any] = inner if isinstance(inner, dict) else found
        revised = args.get("answer", args.get("raw_answer"))
        if revised is None or revised == "":
            logger.warning("reflection: the revision holds no answer; the answer stands")
            return None
        if not isinstance(revised, str):
            revised = compact_json(revised)
        args = {**args, "answer": revised}  # the text, also when the model gave data
        args.setdefault("raw_answer", revised)
        return revised, args

    async def clarify(
        self, query: str, answer: str, critique: ReflectionCritique, trajectory: Trajectory
    ) -> ClarificationResponse:
        """The clarification that replaces a still-failing answer; a fixed one (from the
        `clarification_fallback` template) when the model's is unusable."""
        revisions = self.outcome.revisions
        tried = _tools_tried(trajectory)
        render = self.templates.render
        messages = [
            {"role": "system", "content": render("clarification_system")},
            {
                "role": "user",
                "content": render(
                    "clarification_user",
                    query=query,
                    answer=answer,
                    score=f"{critique.score:.2f}",
                    feedback=critique.feedback or "(none)",
                    issues=_bullets(critique.issues),
                    attempts=_bullets(tried, "(no tools were called)"),
                    revisions=revisions,
                ),
            },
        ]
        try:
            text = await self.ask(
                "main",
                messages,
                _schema_format("clarification_response", ClarificationResponse),
            )
            found = _json_object(text)
            if found is None:
                raise UnusableReplyError(f"the reply is not a JSON object: {text[:120]!r}")
            model = ClarificationResponse.model_validate(found)
        except BaseException as exc:
            if not is_failure(exc):
                raise
            logger.warning(
                "reflection: the clarification could not be written (%s); using a fixed one",
                describe_failure(exc),
            )
            model = ClarificationResponse(
                text=render(
                    "clarification_fallback",
                    query=query,
                    score=f"{critique.score:.2f}",
                    feedback=critique.feedback or "(none)",
                ),
                confidence="unsatisfied",
                attempted_approaches=tried,
                suggestions=list(critique.suggestions),
            )
        # What the run knows is authoritative over what the model wrote about it.
        return model.model_copy(
            update={
                "confidence": "unsatisfied",
                "reflection_score": critique.score,
                "revision_attempts": revisions,
            }
        )

    def clarification_text(self, clarification: ClarificationResponse) -> str:
        attempts = clarification.attempted_approaches
        return self.templates.render(
            "clarification_text",
            text=clarification.text,
            attempts="\n".join(f"{i}. {a}" for i, a in enumerate(attempts, 1)) or "(none)",
            questions=_bullets(clarification.clarifying_questions),
            suggestions=_bullets(clarification.suggestions),
            score=f"{clarification.reflection_score or 0.0:.2f}",
            revisions=clarification.revision_attempts or 0,
        )


async def reflect(
    config: ReflectionConfig,
    *,
    client: Any,
    query: str,
    answer: str,
    trajectory: Trajectory,
    templates: PromptTemplates,
    emit: EmitFn,
    can_revise: Callable[[], bool],
    main_client: Any | None = None,
    system_prompt: str | None = None,
    response_format: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
    max_retries: int = 0,
    account: Callable[..., None] | None = None,
) -> ReflectionOutcome:
    """Critique `answer`, revise it while it fails and revisions are left, and replace it with
    a clarification when it still fails after the last one (see the module's docstring).

    `client` critiques (the reflection model, or the planner's); `main_client` (default
    `client`) writes revisions and the clarification, as the planner's model does in
    PenguiFlow. A revision sees the run's conversation (`system_prompt`, default the
    `identity` section, and the trajectory) and the critique, and answers with a
    `final_response` action (`response_format`: the planner's action format; default one for
    a `final_response`). Each revision is added to `trajectory.steps` as PenguiFlow does (its
    action, observation `{"status": "revision_requested"}`). `timeout_s` and `max_retries`
    apply to each model call (the planner's `llm_timeout_s`, `llm_max_retries`).
    `account(reply, purpose=...)`, when given, is called with each model reply (`purpose`
    `"reflection"` or `"main"`)."""
    outcome = ReflectionOutcome(
        answer=answer, critiques=[], revisions=0, clarification=None, metadata={}
    )
    state = _Reflection(
        config,
        critic=client,
        writer=main_client if main_client is not None else client,
        templates=templates,
        timeout_s=timeout_s,
        max_retries=max_retries,
        account=account,
        outcome=outcome,
    )
    system = system_prompt or templates.render("identity", date=datetime.date.today().isoformat())
    for revision in range(config.max_revisions + 1):
        try:
            critique = await state.critique(query, outcome.answer, trajectory)
        except BaseException as exc:
            if not is_failure(exc):
                raise
            logger.warning(
                "reflection skipped: the critic failed (%s); the answer stands",
                describe_failure(exc),
            )
            await emit(
                "reflection_failed", {"revision": revision, "error_type": type(exc).__name__}
            )
            break
        outcome.critiques.append(critique)
        await emit(
            "reflection_critique",
            {
                "score": critique.score,
                "passed": critique.passed,
                "revision": revision,
                "feedback": critique.feedback[:_EVENT_FEEDBACK_CHARS],
            },
        )
        if critique.passed:
            break
        if revision >= config.max_revisions:
            clarification = await state.clarify(query, outcome.answer, critique, trajectory)
            outcome.clarification = clarification
            outcome.answer = state.clarification_text(clarification)
            await emit(
                "reflection_clarification_generated",
                {
                    "original_score": critique.score,
                    "threshold": config.quality_threshold,
                    "revisions": outcome.revisions,
                },
            )
            break
        if not can_revise():
            logger.info("reflection: no budget left for a revision; the answer stands")
            break
        try:
            revised = await state.revise(
                outcome.answer, critique, trajectory, system, response_format
            )
        except BaseException as exc:
            if not is_failure(exc):
                raise
            logger.warning(
                "reflection: the revision failed (%s); the answer stands", describe_failure(exc)
            )
            revised = None
        if revised is None:
            break
        outcome.answer, outcome.revised_args = revised
        outcome.revisions = revision + 1
        action = PlannerAction(next_node=FINAL_RESPONSE, args=dict(outcome.revised_args))
        trajectory.steps.append(
            TrajectoryStep(action=action, observation={"status": "revision_requested"})
        )
        outcome.steps_added.append(len(trajectory.steps) - 1)
        await emit("reflection_revision", {"revision": outcome.revisions, "score": critique.score})
    if not outcome.critiques:
        outcome.metadata = {"skipped": True}
        return outcome
    critique = outcome.critiques[-1]
    outcome.metadata = {
        "score": critique.score,
        "revisions": outcome.revisions,
        "passed": critique.passed,
    }
    if critique.feedback:
        outcome.metadata["feedback"] = critique.feedback
    if outcome.clarification is not None:
        outcome.metadata["confidence"] = "unsatisfied"
    return outcome
