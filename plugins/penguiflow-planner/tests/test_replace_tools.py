"""`ReactPlanner.replace_tools`: a connector's tools swapped for a new list, under the
planner's tool policy, with clashes refused; a run in progress sees the change at its next
step."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest
from penguiflow_planner import PlannerFinish, ReactPlanner, ToolPolicy

from penguiflow.catalog import NodeSpec
from penguiflow.errors import ConfigurationError
from penguiflow.llm import ScriptedLLMClient


def spec(name: str, answer: str = "ok", *, on_call: Any = None) -> NodeSpec:
    async def call(arguments: Mapping[str, Any]) -> str:
        if on_call is not None:
            on_call()
        return answer

    return NodeSpec.from_schema(
        name,
        desc=f"The tool {name}.",
        input_schema={"type": "object", "properties": {}},
        output_schema={"type": "string"},
        call=call,
    )


def planner(*specs: NodeSpec, replies: list[str] | None = None, **options: Any) -> ReactPlanner:
    return ReactPlanner(llm_client=ScriptedLLMClient(replies or []), catalog=list(specs), **options)


def test_a_namespace_is_replaced_and_the_rest_kept() -> None:
    p = planner(spec("srv.a"), spec("srv.b"), spec("local"))
    assert p.replace_tools("srv", [spec("srv.b"), spec("srv.c")]) == ["srv.b", "srv.c"]
    assert [s.name for s in p.catalog] == ["local", "srv.b", "srv.c"]
    # exact names
    assert p.replace_tools(["local"], []) == []
    assert [s.name for s in p.catalog] == ["srv.b", "srv.c"]


def test_the_tool_policy_applies_to_the_new_tools() -> None:
    p = planner(spec("srv.a"), tool_policy=ToolPolicy(denied_tools={"srv.secret"}))
    assert p.replace_tools("srv.", [spec("srv.a"), spec("srv.secret")]) == ["srv.a"]
    assert [s.name for s in p.catalog] == ["srv.a"]


def test_a_clash_with_a_tool_that_stays_is_refused_before_anything_changes() -> None:
    p = planner(spec("srv.a"), spec("other.x"))
    with pytest.raises(ConfigurationError, match=r"already has tools named other\.x"):
        p.replace_tools("srv", [spec("srv.b"), spec("other.x")])
    with pytest.raises(ConfigurationError, match=r"two tools named 'srv\.b'"):
        p.replace_tools("srv", [spec("srv.b"), spec("srv.b")])
    assert [s.name for s in p.catalog] == ["srv.a", "other.x"]


def test_a_running_run_sees_the_new_tools_at_its_next_step() -> None:
    async def scenario() -> tuple[Any, ScriptedLLMClient]:
        holder: dict[str, ReactPlanner] = {}

        def add_later() -> None:
            holder["planner"].replace_tools("srv", [spec("srv.grow"), spec("srv.new", "new!")])

        replies = [
            json.dumps({"next_node": "srv.grow", "args": {}}),
            json.dumps({"next_node": "srv.new", "args": {}}),
            json.dumps({"next_node": None, "args": {"answer": "done"}}),
        ]
        p = planner(spec("srv.grow", on_call=add_later), replies=replies)
        holder["planner"] = p
        llm = p._settings.client
        result = await p.run("grow, then use the new tool")
        await p.aclose()
        return result, llm

    result, llm = asyncio.run(scenario())
    assert isinstance(result, PlannerFinish), result
    steps = result.metadata["steps"]
    assert steps[1]["action"]["next_node"] == "srv.new" and not steps[1].get("error")
    first, second = (" ".join(str(m) for m in call.messages) for call in llm.calls[:2])
    assert "srv.new" not in first and "srv.new" in second
