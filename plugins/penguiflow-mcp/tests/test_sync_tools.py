"""A running planner sees a tool the server adds: `connector.sync_tools(planner)` replaces
the planner's `<server>.*` tools when the server announces the change, and the run's next
step finds it (and its prompts list it) (servers/growing_stdio.py: `unlock` adds `secret`)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import penguiflow_mcp
from conftest import HERE
from penguiflow_mcp import MCPConnector, MCPServerConfig, ToolSync

from penguiflow.llm import ScriptedLLMClient

SERVER = str(HERE / "servers" / "growing_stdio.py")


class GatedLLM(ScriptedLLMClient):
    """Answers its second call only once the planner has the unlocked tool (the change
    arrives on its own stream; waiting on it, not on time, keeps the test deterministic)."""

    sync: ToolSync

    async def complete(self, **kwargs: Any) -> Any:
        if len(self.calls) == 1:
            await asyncio.wait_for(self.sync.wait_for(2), 10)
        return await super().complete(**kwargs)


def test_a_running_planner_calls_the_tool_the_server_added() -> None:
    from penguiflow_planner import PlannerFinish, ReactPlanner

    async def scenario() -> tuple[Any, GatedLLM]:
        config = MCPServerConfig(name="growing", command=sys.executable, args=[SERVER])
        async with MCPConnector(config) as connector:
            llm = GatedLLM(
                [
                    json.dumps({"next_node": "growing.unlock", "args": {}}),
                    json.dumps({"next_node": "growing.secret", "args": {"word": "penguins"}}),
                    json.dumps({"next_node": None, "args": {"answer": "done"}}),
                ]
            )
            planner = ReactPlanner(llm_client=llm, catalog=[])
            async with await connector.sync_tools(planner) as sync:
                llm.sync = sync
                assert sorted(spec.name for spec in planner.catalog) == [
                    "growing.bump",
                    "growing.unlock",
                ]
                result = await planner.run("unlock the secret, then tell it")
                assert {spec.name for spec in planner.catalog} == {
                    "growing.bump",
                    "growing.unlock",
                    "growing.secret",
                }
            await planner.aclose()
            return result, llm

    result, llm = asyncio.run(scenario())
    assert isinstance(result, PlannerFinish), result
    steps = result.metadata["steps"]
    assert [step["action"]["next_node"] for step in steps[:2]] == [
        "growing.unlock",
        "growing.secret",
    ]
    assert "the secret of penguins is 42" in json.dumps(steps[1], default=str), steps[1]
    # the first step's prompt did not list the secret tool; the last one's does
    first, last = (
        " ".join(str(m) for m in call.messages) for call in (llm.calls[0], llm.calls[-1])
    )
    assert "growing.secret" not in first and "growing.secret" in last


def test_tool_sync_is_exported() -> None:
    assert "ToolSync" in penguiflow_mcp.__all__
