"""Public read-only accessors a UI needs (issue 20, the playground): `ReactPlanner.budgets`
(the limits, to show what a run has left) and `ReactPlanner.memory_snapshot(...)` (the
short-term memory kept for a key, read where the planner keeps it)."""

from __future__ import annotations

import json

from penguiflow_planner import PlannerBudgets, PlannerFinish, ReactPlanner
from penguiflow_planner.memory import MemoryKey, ShortTermMemoryConfig

from penguiflow.llm import ScriptedLLMClient
from penguiflow.state import InMemoryStateStore


def _answer(text: str) -> str:
    return json.dumps({"thought": "t", "next_node": "final_response", "args": {"answer": text}})


def test_budgets_reads_the_limits_given_either_way() -> None:
    client = ScriptedLLMClient()
    keywords = ReactPlanner(
        llm_client=client, catalog=[], max_iters=5, hop_budget=3, deadline_s=9.0
    )
    assert keywords.budgets == PlannerBudgets(max_iters=5, hop_budget=3, deadline_s=9.0)
    grouped = PlannerBudgets(max_iters=4, max_tokens=1000, cost_budget_usd=0.5)
    assert ReactPlanner(llm_client=client, catalog=[], budgets=grouped).budgets == grouped


async def test_memory_snapshot_is_the_memory_of_the_runs_key() -> None:
    store = InMemoryStateStore()
    client = ScriptedLLMClient([_answer("first answer"), _answer("second answer")])
    planner = ReactPlanner(
        llm_client=client,
        catalog=[],
        state_store=store,
        short_term_memory=ShortTermMemoryConfig(strategy="truncation"),
    )
    tools = {"tenant_id": "acme", "user_id": "ann", "session_id": "chat-1"}
    assert await planner.memory_snapshot(tool_context=tools) is None  # nothing remembered yet
    # A fork (as a session runs each turn) remembers into the same store: the parent sees it.
    child = planner.fork()
    for query in ("hello", "again"):
        assert isinstance(await child.run(query, tool_context=tools), PlannerFinish)
    snapshot = await planner.memory_snapshot(tool_context=tools)
    assert snapshot is not None
    assert [t["user_message"] for t in snapshot["turns"]] == ["hello", "again"]
    assert snapshot["turns"][1]["assistant_response"] == "second answer"
    json.dumps(snapshot)  # JSON-able as it is
    explicit = await planner.memory_snapshot(memory_key=MemoryKey("acme", "ann", "chat-1"))
    assert explicit == snapshot
    other = {**tools, "session_id": "chat-2"}
    assert await planner.memory_snapshot(tool_context=other) is None
    assert (
        await ReactPlanner(llm_client=client, catalog=[]).memory_snapshot(tool_context=tools)
        is None
    )  # no memory configured
    await child.aclose()
    await planner.aclose()
