"""How a run ends (`PlannerFinish`, `PlannerPause`), what its answer holds (`FinalPayload`),
its metadata, and `Trajectory`'s JSON form, written from PenguiFlow 3.11's public behaviour
(penguiflow==3.11.2 driven with the same scripted client, outside this repository).

Ours adds keys PenguiFlow lacks (`finish_reason`, `run_id`, `usage`, `error`); those are
asserted as ours. The rest must equal PenguiFlow's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from penguiflow_planner import PlannerFinish, PlannerPause, ReactPlanner, Trajectory
from penguiflow_planner._results import FinalPayload
from pydantic import BaseModel
from tools import catalog

from penguiflow.errors import UnknownNameError

#: every metadata key of a PenguiFlow finish
REFERENCE_KEYS = {
    "answer_action_seq", "arg_fill_failure_count", "arg_fill_success_count",
    "args_invalid_count", "args_suspect_count", "artifacts", "autofill_rejection_count",
    "consecutive_arg_failures", "constraints", "cost", "finish_repair_failure_count",
    "finish_repair_success_count", "llm_context", "reason", "repair_attempts", "salvage_used",
    "sources", "step_count", "steps", "thought", "tool_context", "trajectory_metadata",
    "validation_failures_count",
}  # fmt: skip
COUNTERS = [
    "validation_failures_count", "repair_attempts", "args_invalid_count", "args_suspect_count",
    "consecutive_arg_failures", "autofill_rejection_count", "arg_fill_success_count",
    "arg_fill_failure_count", "finish_repair_success_count", "finish_repair_failure_count",
]  # fmt: skip

#: a Trajectory serialised by penguiflow==3.11.2 (`Trajectory.serialise()`)
PENGUIFLOW_DUMP = json.loads(
    '{"query": "q", "llm_context": {"l": 1}, "tool_context": {"t": "v"}, "input_parts": [], '
    '"artifacts": {}, "sources": [], "metadata": {"k": "v"}, "steps": [{"action": {"thought": '
    '"look", "next_node": "search", "args": {"text": "a"}, "plan": null, "join": null}, '
    '"observation": {"answer": "found a"}, "error": null, "failure": null, "llm_observation": '
    '{"answer": "found a"}}, {"action": {"thought": "planning next step", "next_node": '
    '"search", "args": {"wrong": 1}, "plan": null, "join": null}, "observation": null, '
    '"error": "bad args", "failure": {"node": "search", "error_code": "ValidationError"}}], '
    '"summary": null, "hint_state": {}, "resume_user_input": "yes", "steering_inputs": [], '
    '"background_results": {}}'
)


def J(next_node: str, **args: Any) -> str:
    return json.dumps({"next_node": next_node, "args": args})


class Client:
    def __init__(self, *replies: str, clock: list[float] | None = None) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []
        self.clock = clock

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> str:
        if self.clock is not None:
            self.clock[0] += 10.0  # each model call takes ten (fake) seconds
        self.calls.append({"messages": messages, "response_format": response_format})
        return self.replies.pop(0)


def planner(*replies: str, **options: Any) -> tuple[ReactPlanner, Client]:
    client = Client(*replies, clock=options.pop("clock", None))
    return ReactPlanner(llm_client=client, catalog=catalog(), **options), client


class Booking(BaseModel):
    code: str
    seats: int


# -- reasons -------------------------------------------------------------------------------


async def test_an_answer_is_answer_complete_with_penguiflows_metadata() -> None:
    built, _ = planner(J("search", text="x"), J("final_response", answer="done"))
    result = await built.run("find x", llm_context={"lang": "en"}, tool_context={"k": 1})
    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    meta = result.metadata
    assert set(meta) >= REFERENCE_KEYS
    assert set(meta) - REFERENCE_KEYS <= {"finish_reason", "run_id", "usage"}  # ours
    assert meta["reason"] == meta["finish_reason"] == "answer_complete"
    assert meta["step_count"] == 1 and meta["answer_action_seq"] == 2
    assert meta["steps"][0]["action"] == {
        "thought": "planning next step", "next_node": "search", "args": {"text": "x"},
        "plan": None, "join": None,
    }  # fmt: skip
    assert meta["steps"][0]["observation"] == {"titles": ["doc about x"]}
    assert meta["cost"] == {
        "total_cost_usd": 0.0, "main_llm_calls": 2, "reflection_llm_calls": 0,
        "summarizer_llm_calls": 0,
    }  # fmt: skip
    assert meta["llm_context"] == {"lang": "en"} and meta["tool_context"] == {"k": 1}
    assert meta["artifacts"] == {} and meta["sources"] == []
    assert all(meta[name] == 0 for name in COUNTERS) and meta["salvage_used"] is False
    assert set(meta["constraints"]) == {
        "deadline_at", "deadline_remaining_s", "hop_budget", "hops_used",
        "deadline_triggered", "hop_exhausted",
    }  # fmt: skip


async def test_metadata_thought_defaults_as_penguiflows() -> None:
    built, _ = planner(J("final_response", answer="done"))
    result = await built.run("q")
    assert result.metadata["thought"] == "planning next step"


async def test_hops_used_is_zero_without_a_hop_budget() -> None:
    built, _ = planner(J("search", text="x"), J("final_response", answer="done"))
    result = await built.run("q")
    assert result.metadata["constraints"]["hops_used"] == 0


async def test_steps_carry_the_llm_observation() -> None:
    built, _ = planner(J("search", text="x"), J("final_response", answer="done"))
    result = await built.run("q")
    assert result.metadata["steps"][0]["llm_observation"] == {"titles": ["doc about x"]}


async def test_max_iters_is_no_path_with_the_last_observation() -> None:
    built, client = planner(*[J("search", text=str(i)) for i in range(5)], max_iters=2)
    result = await built.run("loop")
    assert isinstance(result, PlannerFinish)
    assert result.reason == "no_path"
    assert result.metadata["finish_reason"] == "max_iters"  # ours: the precise reason
    assert result.payload == {"titles": ["doc about 1"]}  # PenguiFlow: the last result
    assert result.metadata["step_count"] == 2 and len(client.calls) == 2
    assert result.metadata["cost"]["main_llm_calls"] == 2


async def test_max_iters_metadata_names_the_last_decision() -> None:
    built, _ = planner(*[J("search", text=str(i)) for i in range(5)], max_iters=2)
    result = await built.run("loop")
    assert result.metadata["answer_action_seq"] == 2
    assert result.metadata["thought"] == "iteration limit reached"


async def test_a_spent_hop_budget_lets_the_model_answer() -> None:
    built, client = planner(
        J("search", text="a"), J("search", text="b"), J("final_response", answer="fin"),
        hop_budget=1,
    )  # fmt: skip
    result = await built.run("loop")
    assert isinstance(result, PlannerFinish) and result.reason == "answer_complete"
    assert result.payload["raw_answer"] == "fin" and len(client.calls) == 3
    steps = result.metadata["steps"]
    assert steps[1]["observation"] is None and "hop budget" in steps[1]["error"].lower()
    constraints = result.metadata["constraints"]
    assert constraints["hop_budget"] == 1 and constraints["hops_used"] == 1
    assert constraints["hop_exhausted"] is True and constraints["deadline_triggered"] is False


async def test_a_passed_deadline_is_budget_exhausted() -> None:
    clock = [0.0]
    built, client = planner(
        *[J("search", text=str(i)) for i in range(5)],
        deadline_s=15,
        time_source=lambda: clock[0],
        clock=clock,
    )
    result = await built.run("slow")
    assert isinstance(result, PlannerFinish)
    assert result.reason == "budget_exhausted"
    assert result.metadata["finish_reason"] == "deadline"
    assert result.payload == {"titles": ["doc about 1"]}
    assert len(client.calls) == 2 and result.metadata["step_count"] == 2
    constraints = result.metadata["constraints"]
    assert constraints["deadline_triggered"] is True
    assert constraints["deadline_remaining_s"] == 0.0


async def test_deadline_at_is_when_the_deadline_was() -> None:
    clock = [0.0]
    built, _ = planner(
        *[J("search", text=str(i)) for i in range(5)],
        deadline_s=15, time_source=lambda: clock[0], clock=clock,
    )  # fmt: skip
    result = await built.run("slow")
    assert result.metadata["constraints"]["deadline_at"] == 15.0


# -- pause and resume ----------------------------------------------------------------------


async def test_a_pause_has_penguiflows_fields_and_a_resume_finishes() -> None:
    built, client = planner(J("refund", amount=5.0), J("final_response", answer="ok"))
    paused = await built.run("refund 5", tool_context={"k": 1})
    assert isinstance(paused, PlannerPause)
    assert set(type(paused).model_fields) == {"reason", "payload", "resume_token"}
    assert paused.reason == "approval_required" and paused.payload == {"amount": 5.0}
    assert isinstance(paused.resume_token, str) and paused.resume_token
    resumed = await built.resume(paused.resume_token, "approved")
    assert isinstance(resumed, PlannerFinish) and resumed.reason == "answer_complete"
    assert resumed.payload["raw_answer"] == "ok"
    assert resumed.metadata["step_count"] == 1
    assert resumed.metadata["steps"][0]["observation"] == {
        "pause": "approval_required",
        "payload": {"amount": 5.0},
    }
    assert resumed.metadata["cost"]["main_llm_calls"] == 2  # counted across the pause
    assert "approved" in json.dumps(client.calls[1]["messages"])


async def test_a_used_or_unknown_token_is_a_key_error() -> None:
    built, _ = planner(J("refund", amount=5.0), J("final_response", answer="ok"))
    paused = await built.run("refund 5")
    assert isinstance(paused, PlannerPause)
    await built.resume(paused.resume_token, "yes")
    for token in (paused.resume_token, "bogus"):
        with pytest.raises(KeyError) as caught:  # PenguiFlow raises KeyError
            await built.resume(token, "again")
        assert isinstance(caught.value, UnknownNameError)
        assert token not in str(caught.value)  # ours never shows a token


async def test_pause_disabled_makes_the_pausing_tool_fail_as_a_step() -> None:
    built, _ = planner(
        J("refund", amount=5.0), J("final_response", answer="ok"), pause_enabled=False
    )
    result = await built.run("refund 5")
    assert isinstance(result, PlannerFinish) and result.reason == "answer_complete"
    step = result.metadata["steps"][0]
    assert step["observation"] is None and "pause_enabled" in step["error"]
    assert step["failure"]["node"] == "refund"


# -- FinalPayload ----------------------------------------------------------------------------


async def test_final_payload_fields_come_from_the_final_response_args() -> None:
    args = {
        "answer": "A1", "confidence": 0.7, "custom": 1, "requires_followup": True,
        "warnings": ["w"], "language": "en", "route": "r",
        "suggested_actions": [{"action_id": "a", "label": "L"}],
    }  # fmt: skip
    built, _ = planner(json.dumps({"next_node": "final_response", "args": args}))
    result = await built.run("q")
    assert result.payload == {
        "raw_answer": "A1", "structured": None, "artifacts": {}, "confidence": 0.7,
        "sources": [], "route": "r",
        "suggested_actions": [{"action_id": "a", "label": "L", "params": {}}],
        "requires_followup": True, "warnings": ["w"], "language": "en",
        "extra": {"answer": "A1", "custom": 1},
    }  # fmt: skip
    assert set(result.payload) == set(FinalPayload.model_fields)


async def test_raw_answer_is_accepted_as_the_answer() -> None:
    built, _ = planner(J("final_response", raw_answer="A2"))
    result = await built.run("q")
    assert result.payload["raw_answer"] == "A2" and result.payload["extra"] == {"answer": "A2"}


async def test_a_valid_structured_answer_needs_no_repair() -> None:
    built, client = planner(
        J("final_response", answer="booked", structured={"code": "X1", "seats": 2}),
        final_response_model=Booking,
    )
    result = await built.run("q")
    assert result.payload["structured"] == {"code": "X1", "seats": 2}
    assert result.payload["extra"] == {"answer": "booked"} and result.payload["warnings"] == []
    assert len(client.calls) == 1


@pytest.mark.parametrize(
    "first",
    [
        J("final_response", answer="booked", structured={"code": "X1", "seats": "many"}),
        J("final_response", answer="booked", code="X1"),  # no "structured" at all
    ],
)
async def test_an_invalid_structured_answer_is_repaired(first: str) -> None:
    built, client = planner(first, json.dumps({"code": "X1", "seats": 4}),
                            final_response_model=Booking)  # fmt: skip
    result = await built.run("q")
    assert result.payload["raw_answer"] == "booked"
    assert result.payload["structured"] == {"code": "X1", "seats": 4}
    assert result.payload["warnings"] == []
    assert len(client.calls) == 2
    repair = client.calls[1]
    assert repair["response_format"] == {"type": "json_object"}  # PenguiFlow's
    assert '"seats"' in repair["messages"][-1]["content"]  # the schema is shown
    assert result.metadata["cost"]["main_llm_calls"] == 2
    # PenguiFlow counts the structured repair in neither finish_repair counter
    assert result.metadata["finish_repair_success_count"] == 0


@pytest.mark.parametrize("retries", [1, 0])
async def test_a_structured_answer_that_stays_invalid_degrades_with_a_warning(
    retries: int,
) -> None:
    built, client = planner(
        J("final_response", answer="booked", structured={"code": "X1", "seats": "many"}),
        "nonsense", "nonsense",
        final_response_model=Booking, final_response_retries=retries,
    )  # fmt: skip
    result = await built.run("q")
    assert isinstance(result, PlannerFinish) and result.reason == "answer_complete"
    assert result.payload["raw_answer"] == "booked" and result.payload["structured"] is None
    # ours words the warning differently (it says why); PenguiFlow's names the model too
    (warning,) = result.payload["warnings"]
    assert "Booking" in warning
    assert len(client.calls) == 1 + retries


# -- Trajectory's JSON form ----------------------------------------------------------------


def test_a_penguiflow_dump_loads_and_round_trips() -> None:
    trajectory = Trajectory.from_serialised(PENGUIFLOW_DUMP)
    assert trajectory.query == "q"
    assert trajectory.llm_context == {"l": 1} and trajectory.tool_context == {"t": "v"}
    assert trajectory.metadata == {"k": "v"} and trajectory.resume_user_input == "yes"
    first, second = trajectory.steps
    assert first.action.next_node == "search" and first.action.args == {"text": "a"}
    assert first.action.thought == "look"
    assert first.observation == {"answer": "found a"}
    assert first.llm_observation == {"answer": "found a"}
    assert second.error == "bad args"
    assert dict(second.failure or {}) == {"node": "search", "error_code": "ValidationError"}
    again = trajectory.serialise()
    for key in ("query", "llm_context", "tool_context", "metadata", "steps",
                "resume_user_input", "steering_inputs", "summary"):  # fmt: skip
        assert again[key] == PENGUIFLOW_DUMP[key], key
    assert Trajectory.from_serialised(json.loads(json.dumps(again))).serialise() == again


async def test_a_finished_runs_steps_round_trip_through_serialise() -> None:
    built, _ = planner(J("search", text="x"), J("weather", city="Atlantis"),
                       J("final_response", answer="done"))  # fmt: skip
    result = await built.run("q", llm_context={"a": 1})
    trajectory = Trajectory.from_serialised(
        {"query": "q", "llm_context": {"a": 1}, "steps": result.metadata["steps"]}
    )
    assert [step.action.next_node for step in trajectory.steps] == ["search", "weather"]
    assert trajectory.steps[1].error is not None and "Atlantis" in trajectory.steps[1].error
    assert trajectory.to_history() == result.metadata["steps"]


def test_penguiflows_older_action_forms_load() -> None:
    finish = Trajectory.from_serialised(
        {
            "query": "q",
            "steps": [
                {"action": {"next_node": None, "args": {"answer": "x"}}, "observation": None}
            ],
        }
    )
    assert finish.steps[0].action.next_node == "final_response"
    plan = Trajectory.from_serialised(
        {"query": "q", "steps": [{"action": {"plan": [{"node": "a", "args": {}}],
                                             "join": {"node": "j"}}, "observation": None}]}
    )  # fmt: skip
    action = plan.steps[0].action
    assert action.next_node == "parallel"
    assert action.args["steps"] == [{"node": "a", "args": {}}]
