"""Reflection, written from PenguiFlow 3.11's public API (`ReflectionConfig`,
`ReflectionCriteria`, `ReflectionCritique`) with scripted clients: pass, revise then pass,
a clarification after the last revision, a failing critic, no budget to revise, events."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from penguiflow_planner._actions import PlannerAction
from penguiflow_planner._reflection import (
    ReflectionConfig,
    ReflectionCriteria,
    ReflectionCritique,
    ReflectionOutcome,
    reflect,
)
from penguiflow_planner._trajectory import Trajectory, TrajectoryStep
from penguiflow_planner.prompts import PromptTemplates
from pydantic import ValidationError

from penguiflow.llm import LLMResponse, ScriptedLLMClient


class JSONClient:
    """A client as PenguiFlow users write them: plain dict messages in, text out (or an
    exception, or `(text, cost)`)."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    async def complete(
        self,
        *,
        messages: list[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> Any:
        self.calls.append(
            {"messages": [dict(m) for m in messages], "response_format": response_format}
        )
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None:
        self.seen.append((event_type, dict(extra)))

    def types(self) -> list[str]:
        return [event_type for event_type, _ in self.seen]


def critique(score: float, passed: bool = False, **more: Any) -> str:
    body = {
        "score": score,
        "passed": passed,
        "feedback": f"feedback at {score}",
        "issues": [f"issue at {score}"],
        "suggestions": [f"suggestion at {score}"],
    }
    body.update(more)
    return json.dumps(body)


def final(answer: str, **args: Any) -> str:
    return json.dumps({"next_node": "final_response", "args": {"answer": answer, **args}})


def _trajectory() -> Trajectory:
    trajectory = Trajectory(query="How many penguins live in Antarctica?")
    trajectory.steps.append(
        TrajectoryStep(
            action=PlannerAction(next_node="census", args={"region": "antarctica"}),
            observation={"count": 20_000_000},
        )
    )
    return trajectory


async def _reflect(
    client: Any,
    config: ReflectionConfig | None = None,
    *,
    trajectory: Trajectory | None = None,
    events: Events | None = None,
    can_revise: bool = True,
    **more: Any,
) -> ReflectionOutcome:
    return await reflect(
        config or ReflectionConfig(enabled=True),
        client=client,
        query="How many penguins live in Antarctica?",
        answer="About 20 million.",
        trajectory=trajectory if trajectory is not None else _trajectory(),
        templates=PromptTemplates(),
        emit=events if events is not None else Events(),
        can_revise=lambda: can_revise,
        **more,
    )


# -- models -------------------------------------------------------------------------------------


def test_models_have_penguiflows_fields_defaults_and_bounds() -> None:
    config = ReflectionConfig()
    assert config.enabled is False
    assert config.quality_threshold == 0.8
    assert config.max_revisions == 2
    assert config.use_separate_llm is False
    assert config.criteria == ReflectionCriteria()
    assert set(ReflectionCriteria.model_fields) == {"completeness", "accuracy", "clarity"}
    for bad in ({"quality_threshold": 1.5}, {"max_revisions": 0}, {"max_revisions": 11}):
        with pytest.raises(ValidationError):
            ReflectionConfig(**bad)
    with pytest.raises(ValidationError):
        ReflectionCritique(score=1.2, passed=True, feedback="")
    critique = ReflectionCritique(score=0.5, passed=False, feedback="meh")
    assert critique.issues == [] and critique.suggestions == []


# -- the loop -----------------------------------------------------------------------------------


async def test_an_answer_that_passes_stands() -> None:
    client = JSONClient(critique(0.9, passed=True))
    events = Events()
    outcome = await _reflect(client, events=events)
    assert outcome.answer == "About 20 million."
    assert outcome.revisions == 0 and outcome.clarification is None
    assert outcome.metadata == {
        "score": 0.9,
        "revisions": 0,
        "passed": True,
        "feedback": "feedback at 0.9",
    }
    assert events.seen == [
        (
            "reflection_critique",
            {"score": 0.9, "passed": True, "revision": 0, "feedback": "feedback at 0.9"},
        ),
    ]
    [call] = client.calls
    assert call["response_format"]["type"] == "json_schema"
    assert call["response_format"]["json_schema"]["name"] == "reflection_critique"
    assert call["response_format"]["json_schema"]["schema"]["required"] == [
        "score",
        "passed",
        "feedback",
    ]
    system, user = call["messages"][0]["content"], call["messages"][1]["content"]
    assert "Addresses all parts of the query" in system and "0.8" in system
    assert "How many penguins" in user and "About 20 million." in user
    assert "census: returned" in user and "20000000" in user  # what the tools gave


async def test_a_score_at_the_threshold_passes_whatever_the_critic_says() -> None:
    outcome = await _reflect(JSONClient(critique(0.85, passed=False)))
    assert outcome.metadata["passed"] is True and outcome.critiques[0].passed is True
    assert outcome.revisions == 0


async def test_a_weak_answer_is_revised_then_passes() -> None:
    critic = JSONClient(critique(0.3), critique(0.95, passed=True))
    writer = JSONClient(final("About 20 million penguins, in 2024.", confidence=0.9))
    trajectory = _trajectory()
    events = Events()
    outcome = await _reflect(
        critic, trajectory=trajectory, events=events, main_client=writer, system_prompt="SYS"
    )
    assert outcome.answer == "About 20 million penguins, in 2024."
    assert outcome.revisions == 1
    assert outcome.revised_args == {
        "answer": "About 20 million penguins, in 2024.",
        "raw_answer": "About 20 million penguins, in 2024.",
        "confidence": 0.9,
    }
    assert outcome.metadata == {
        "score": 0.95,
        "revisions": 1,
        "passed": True,
        "feedback": "feedback at 0.95",
    }
    assert events.types() == ["reflection_critique", "reflection_revision", "reflection_critique"]
    assert events.seen[1][1] == {"revision": 1, "score": 0.3}
    # The revision is a step of the run, as in PenguiFlow.
    step = trajectory.steps[-1]
    assert step.action.next_node == "final_response"
    assert step.observation == {"status": "revision_requested"}
    assert outcome.steps_added == [1]
    # The writer saw the run's conversation, then the critique and the answer to improve.
    [call] = writer.calls
    messages = call["messages"]
    assert messages[0] == {"role": "system", "content": "SYS"}
    assert messages[-1]["role"] == "user"
    assert "feedback at 0.3" in messages[-1]["content"]
    assert "issue at 0.3" in messages[-1]["content"]
    assert "suggestion at 0.3" in messages[-1]["content"]
    assert "About 20 million." in messages[-1]["content"]
    assert call["response_format"]["json_schema"]["name"] == "planner_action"
    # The second critique judged the revised answer.
    assert "About 20 million penguins, in 2024." in critic.calls[1]["messages"][1]["content"]
    assert outcome.critic_calls == 2 and outcome.main_calls == 1


async def test_still_weak_after_the_last_revision_becomes_a_clarification() -> None:
    clarification = json.dumps(
        {
            "text": "I could not find a reliable count.",
            "confidence": "satisfied",  # the run knows better: replaced by "unsatisfied"
            "attempted_approaches": ["census"],
            "clarifying_questions": ["Which species?", "Which year?"],
            "suggestions": ["a recent survey"],
        }
    )
    client = JSONClient(critique(0.3), final("Maybe 20 million."), critique(0.4), clarification)
    events = Events()
    config = ReflectionConfig(enabled=True, max_revisions=1)
    outcome = await _reflect(client, config, events=events)
    assert outcome.clarification is not None
    assert outcome.clarification.confidence == "unsatisfied"
    assert outcome.clarification.reflection_score == 0.4
    assert outcome.clarification.revision_attempts == 1
    assert outcome.answer.startswith("I could not find a reliable count.")
    assert "- Which species?" in outcome.answer and "1. census" in outcome.answer
    assert outcome.metadata == {
        "score": 0.4,
        "revisions": 1,
        "passed": False,
        "feedback": "feedback at 0.4",
        "confidence": "unsatisfied",
    }
    assert events.types() == [
        "reflection_critique",
        "reflection_revision",
        "reflection_critique",
        "reflection_clarification_generated",
    ]
    assert events.seen[-1][1] == {"original_score": 0.4, "threshold": 0.8, "revisions": 1}
    format_ = client.calls[-1]["response_format"]
    assert format_["json_schema"]["name"] == "clarification_response"
    assert "census" in client.calls[-1]["messages"][1]["content"]


async def test_an_unusable_clarification_falls_back_to_a_fixed_one() -> None:
    client = JSONClient(critique(0.2), "not json at all")
    outcome = await _reflect(
        client, ReflectionConfig(enabled=True, max_revisions=1), can_revise=False
    )
    # No budget to revise: PenguiFlow keeps the answer rather than asking again.
    assert outcome.clarification is None and outcome.answer == "About 20 million."
    client = JSONClient(critique(0.2), final("Revised."), critique(0.3), "not json at all")
    outcome = await _reflect(client, ReflectionConfig(enabled=True, max_revisions=1))
    assert outcome.clarification is not None
    assert outcome.clarification.attempted_approaches == ["census"]
    assert outcome.clarification.suggestions == ["suggestion at 0.3"]
    assert "0.30" in outcome.answer and "feedback at 0.3" in outcome.answer


async def test_no_budget_to_revise_leaves_the_answer() -> None:
    events = Events()
    outcome = await _reflect(JSONClient(critique(0.3)), events=events, can_revise=False)
    assert outcome.answer == "About 20 million."
    assert outcome.revisions == 0 and outcome.clarification is None
    assert outcome.metadata["passed"] is False and outcome.metadata["revisions"] == 0
    assert events.types() == ["reflection_critique"]


@pytest.mark.parametrize(
    "reply",
    [
        RuntimeError("critic is down"),
        "definitely not JSON",
        json.dumps({"score": 7, "passed": True, "feedback": "out of range"}),
        json.dumps({"verdict": "fine"}),
    ],
)
async def test_a_failing_critic_is_skipped_and_the_answer_stands(
    reply: Any, caplog: pytest.LogCaptureFixture
) -> None:
    events = Events()
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        outcome = await _reflect(JSONClient(reply), events=events)
    assert outcome.answer == "About 20 million."
    assert outcome.critiques == [] and outcome.metadata == {"skipped": True}
    assert events.types() == ["reflection_failed"]
    assert "reflection skipped: the critic failed" in caplog.text


async def test_a_critic_failing_after_a_revision_keeps_the_revision() -> None:
    client = JSONClient(critique(0.3), final("Better."), RuntimeError("gone"))
    outcome = await _reflect(client)
    assert outcome.answer == "Better." and outcome.revisions == 1
    assert outcome.metadata["score"] == 0.3 and outcome.metadata["revisions"] == 1


async def test_a_revision_without_an_answer_leaves_the_answer() -> None:
    client = JSONClient(critique(0.3), json.dumps({"next_node": "census", "args": {}}))
    outcome = await _reflect(client)
    assert outcome.answer == "About 20 million." and outcome.revisions == 0
    client = JSONClient(critique(0.3), RuntimeError("writer down"))
    outcome = await _reflect(client)
    assert outcome.answer == "About 20 million." and outcome.revisions == 0


async def test_client_dialects_and_costs() -> None:
    # (text, cost) replies, as PenguiFlow clients may return; and our LLMResponse clients.
    client = JSONClient(
        (critique(0.2), 0.01), (final("Better."), 0.02), (critique(0.9, passed=True), 0.01)
    )
    accounted: list[tuple[str, float]] = []
    outcome = await _reflect(
        client, account=lambda reply, purpose: accounted.append((purpose, reply.cost_usd))
    )
    assert outcome.answer == "Better."
    assert outcome.cost_usd == pytest.approx(0.04)
    assert accounted == [("reflection", 0.01), ("main", 0.02), ("reflection", 0.01)]
    scripted = ScriptedLLMClient([critique(0.95, passed=True)])
    outcome = await _reflect(scripted)
    assert outcome.metadata["passed"] is True and outcome.cost_usd == 0.0
    assert scripted.calls[0].messages[1].role == "user"

    class Priced:
        async def complete(self, **_: Any) -> LLMResponse:
            return LLMResponse(text=critique(0.95, passed=True), cost_usd=0.5)

    outcome = await _reflect(Priced())
    assert outcome.metadata["passed"] is True and outcome.cost_usd == 0.5


async def test_a_fenced_critique_is_read() -> None:
    outcome = await _reflect(JSONClient(f"```json\n{critique(0.9, passed=True)}\n```"))
    assert outcome.metadata["passed"] is True


async def test_a_cancelled_run_is_not_swallowed_by_reflection() -> None:
    reached = []

    class Hanging:
        async def complete(self, **_: Any) -> str:
            scope.cancel()
            await anyio.sleep_forever()  # ends by the cancellation above, not by time
            return ""

    with anyio.CancelScope() as scope:
        await _reflect(Hanging())
        reached.append(True)
    assert scope.cancelled_caught and reached == []


async def test_criteria_and_templates_reach_the_critic() -> None:
    client = JSONClient(critique(0.9, passed=True))
    config = ReflectionConfig(
        enabled=True, criteria=ReflectionCriteria(accuracy="Numbers match the census exactly")
    )
    await _reflect(client, config)
    assert "Numbers match the census exactly" in client.calls[0]["messages"][0]["content"]
    client = JSONClient(critique(0.9, passed=True))
    await reflect(
        config,
        client=client,
        query="q",
        answer="a",
        trajectory=Trajectory(query="q"),
        templates=PromptTemplates(critique_user="Q={query} A={answer}"),
        emit=Events(),
        can_revise=lambda: True,
    )
    assert client.calls[0]["messages"][1]["content"] == "Q=q A=a"


async def test_a_critic_that_never_answers_times_out_and_is_skipped() -> None:
    class Silent:
        async def complete(self, **_: Any) -> str:
            await anyio.sleep_forever()  # only the call's timeout ends it
            return ""

    events = Events()
    outcome = await _reflect(Silent(), events=events, timeout_s=0.05)
    assert outcome.answer == "About 20 million." and outcome.metadata == {"skipped": True}
    assert events.types() == ["reflection_failed"]
