"""Keeping the prompt small (PenguiFlow 3.11's `token_budget` summary and error recovery's
observation compression), with scripted summariser clients of every reply shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from penguiflow_planner._actions import PlannerAction
from penguiflow_planner._summarise import (
    COMPRESSED_MARKER,
    compress_observations,
    estimate_prompt_tokens,
    summarise_trajectory,
)
from penguiflow_planner._trajectory import Trajectory, TrajectoryStep, TrajectorySummary

from penguiflow.llm import LLMResponse


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None:
        self.events.append((event_type, dict(extra)))


class ScriptedClient:
    """A PenguiFlow-style JSON client: `complete(*, messages, response_format, ...)`."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> Any:
        self.calls.append({"messages": messages, "response_format": response_format})
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


def trajectory_with(*observations: Any, error_last: bool = False) -> Trajectory:
    trajectory = Trajectory(query="find the invoice", llm_context={"lang": "en"})
    for index, observation in enumerate(observations):
        trajectory.steps.append(
            TrajectoryStep(
                action=PlannerAction(next_node=f"tool{index}", args={"n": index}),
                observation=observation,
            )
        )
    if error_last:
        trajectory.steps.append(
            TrajectoryStep(
                action=PlannerAction(next_node="broken", args={}), error="broken raised: nope"
            )
        )
    return trajectory


# -- the estimate --------------------------------------------------------------------------------


def test_token_estimate_matches_penguiflow() -> None:
    # values PenguiFlow 3.11's estimate gives for the same messages
    assert estimate_prompt_tokens([{"role": "system", "content": "x" * 350}]) == 107
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "abc"},
        {"role": "user", "content": "hello world " * 100},
        {"role": "assistant", "content": {"a": 1}},
    ]
    assert estimate_prompt_tokens(messages) == 368
    assert estimate_prompt_tokens([]) == 0


# -- the history summary -------------------------------------------------------------------------

SUMMARY = {
    "goals": ["find the invoice"],
    "facts": {"invoice_id": "INV-42"},
    "pending": ["email it"],
    "last_output_digest": "INV-42 found",
    "note": None,
}


async def test_the_summariser_writes_the_summary() -> None:
    trajectory = trajectory_with({"invoice": "INV-42"}, {"blob": "y" * 50_000})
    client = ScriptedClient(json.dumps(SUMMARY))
    recorder = Recorder()
    summary = await summarise_trajectory(trajectory, client=client, emit=recorder)
    assert summary is trajectory.summary
    assert summary.facts == {"invoice_id": "INV-42"}
    assert summary.note == "llm"
    (call,) = client.calls
    assert call["response_format"]["type"] == "json_schema"
    assert call["response_format"]["json_schema"]["name"] == "trajectory_summary"
    assert call["response_format"]["json_schema"]["schema"] == (
        TrajectorySummary.model_json_schema()
    )
    request = call["messages"][-1]["content"]
    assert "find the invoice" in request and "INV-42" in request
    assert len(request) < 10_000  # the 50 KB observation was clipped for the summariser
    ((event, extra),) = recorder.events
    assert event == "trajectory_summarized"
    assert extra["method"] == "llm" and extra["steps"] == 2
    assert extra["summary_chars"] < extra["history_chars"]


async def test_every_client_reply_shape_works_and_its_cost_is_recorded() -> None:
    costs: list[float] = []
    fenced = f"```json\n{json.dumps(SUMMARY)}\n```"
    for reply, cost in (
        ((json.dumps(SUMMARY), 0.25), 0.25),  # PenguiFlow's (text, cost)
        (LLMResponse(text=fenced, cost_usd=0.5), 0.5),  # ours, fenced
    ):
        costs.clear()
        trajectory = trajectory_with({"a": 1})
        summary = await summarise_trajectory(
            trajectory, client=ScriptedClient(reply), emit=Recorder(), record_cost=costs.append
        )
        assert summary.note == "llm"
        assert costs == [cost]


@pytest.mark.parametrize(
    "reply", [RuntimeError("summariser down"), "not json", json.dumps({"goals": "not a list"})]
)
async def test_a_failing_summariser_falls_back_to_the_rule_based_summary(reply: Any) -> None:
    trajectory = trajectory_with({"invoice": "INV-42"})
    recorder = Recorder()
    summary = await summarise_trajectory(trajectory, client=ScriptedClient(reply), emit=recorder)
    assert summary.note == "rule_based_fallback"
    assert summary.goals == ["find the invoice"]
    assert recorder.events[0][1]["method"] == "rule_based_fallback"


async def test_without_a_summariser_the_summary_is_rule_based() -> None:
    trajectory = trajectory_with({"invoice": "INV-42"}, error_last=True)
    recorder = Recorder()
    summary = await summarise_trajectory(trajectory, client=None, emit=recorder)
    assert summary == trajectory.compress()
    assert summary.note == "rule_based"
    assert trajectory.summary == summary
    assert recorder.events[0][1]["method"] == "rule_based"


# -- compressing observations --------------------------------------------------------------------


async def test_large_observations_are_summarised_for_the_model_only() -> None:
    big = {"rows": [f"row {i}" for i in range(800)]}
    trajectory = trajectory_with({"small": 1}, big, error_last=True)
    client = ScriptedClient("800 rows, row 0 to row 799")
    recorder = Recorder()
    count = await compress_observations(
        trajectory, threshold_chars=2000, client=client, summarise=True, emit=recorder
    )
    assert count == 1
    small, large, failed = trajectory.steps
    assert small.llm_observation is None
    assert large.observation == big  # the record is kept whole
    assert large.llm_observation == {
        COMPRESSED_MARKER: True,
        "summary": "800 rows, row 0 to row 799",
        "original_chars": len(json.dumps(big)),
    }
    assert failed.llm_observation is None and failed.error is not None
    assert "tool1" in client.calls[0]["messages"][-1]["content"]
    ((event, extra),) = recorder.events
    assert event == "trajectory_compressed"
    assert extra["steps_compressed"] == 1 and extra["reason"] == "context_length"
    assert extra["compressed_size_chars"] < extra["original_size_chars"]
    # already compressed: nothing more to do, and no event
    again = await compress_observations(
        trajectory, threshold_chars=20, client=client, summarise=True, emit=recorder
    )
    assert again == 0 and len(recorder.events) == 1


async def test_what_the_model_sees_is_what_is_measured() -> None:
    step = TrajectoryStep(
        action=PlannerAction(next_node="t", args={}),
        observation={"chart": "c" * 10_000},
        llm_observation={"chart": "<artifact:str size=10000>"},
    )
    trajectory = Trajectory(query="q", steps=[step])
    count = await compress_observations(
        trajectory, threshold_chars=2000, client=None, summarise=False, emit=Recorder()
    )
    assert count == 0  # the model never saw the 10 KB


@pytest.mark.parametrize(("summarise", "client"), [(False, "unused"), (True, None), (True, "fail")])
async def test_without_a_summary_the_observation_is_clipped(summarise: bool, client: Any) -> None:
    scripted = ScriptedClient(RuntimeError("down"))
    if client == "unused":
        scripted = ScriptedClient()
    trajectory = trajectory_with({"text": "z" * 9000})
    count = await compress_observations(
        trajectory,
        threshold_chars=2000,
        client=scripted if client is not None else None,
        summarise=summarise,
        emit=Recorder(),
    )
    assert count == 1
    shown = trajectory.steps[0].llm_observation
    assert shown[COMPRESSED_MARKER] is True
    assert shown["summary"].startswith('{"text": "zzz')
    assert len(shown["summary"]) < 500
    if client == "unused":
        assert scripted.calls == []


async def test_compression_costs_are_recorded() -> None:
    costs: list[float] = []
    trajectory = trajectory_with({"a": "b" * 3000}, {"c": "d" * 3000})
    client = ScriptedClient(("one", 0.1), LLMResponse(text="two", cost_usd=0.2))
    await compress_observations(
        trajectory, threshold_chars=2000, client=client, summarise=True, emit=Recorder(),
        attempt=2, record_cost=costs.append,
    )  # fmt: skip
    assert costs == [0.1, 0.2]
    assert [s.llm_observation["summary"] for s in trajectory.steps] == ["one", "two"]
