"""`a2a_agent_tools`: one catalog entry per skill of an agent card, used by a `ReactPlanner`
(scripted LLM) against an agent in another process built with the official SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from client_support import agent_process
from penguiflow_a2a._wire import AgentCard, AgentSkill
from penguiflow_a2a.client import A2AHttpTransport, A2ATaskFailedError, a2a_agent_tools
from penguiflow_planner import PlannerFinish, ReactPlanner

from penguiflow.errors import ConfigurationError, InvalidTypeError
from penguiflow.llm import ScriptedLLMClient

TOKEN = "secret-token"


@pytest.fixture(scope="module")
def sdk_agent() -> Iterator[str]:
    with agent_process("sdk_agent.py", "--token", TOKEN) as url:
        yield url


@pytest.fixture
async def transport() -> AsyncIterator[A2AHttpTransport]:
    async with A2AHttpTransport(bearer_token=TOKEN, timeout_s=20) as made:
        yield made


def act(tool: str, **args: Any) -> str:
    return json.dumps({"next_node": tool, "args": args})


async def test_one_tool_per_skill_named_after_the_agent(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    tools = await a2a_agent_tools(sdk_agent, transport=transport)
    assert [tool.name for tool in tools] == ["sdk_test_agent.echo", "sdk_test_agent.numbers"]
    echo = tools[0]
    assert "Echoes the message back" in echo.desc and "echo hello" in echo.desc
    assert echo.args_schema["required"] == ["message"]
    assert echo.side_effects == "external" and "a2a" in echo.tags
    assert echo.extra["a2a_agent_url"] == sdk_agent and echo.extra["a2a_skill"] == "echo"
    assert echo.to_tool_record()["name"] == "sdk_test_agent.echo"
    assert echo.call is not None
    assert await echo.call({"message": "echo direct"}) == "echo:direct"
    assert await tools[1].call({"message": "data"}) == {"answer": 42, "skill": "numbers"}  # type: ignore[misc]


async def test_a_planner_calls_an_agent_skill_as_a_tool(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    tools = await a2a_agent_tools(sdk_agent, transport=transport, prefix="remote")
    llm = ScriptedLLMClient(
        [
            act("remote.echo", message="echo hello planner"),
            act("final_response", answer="the agent said echo:hello planner"),
        ]
    )
    planner = ReactPlanner(llm_client=llm, catalog=tools)
    result = await planner.run("ask the remote agent")
    assert isinstance(result, PlannerFinish) and result.ok
    # the tool's observation (the agent's answer) reached the model
    shown = json.dumps([message.content for message in llm.calls[1].messages])
    assert "echo:hello planner" in shown


async def test_failures_and_questions_reach_the_caller(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    (echo, _) = await a2a_agent_tools(sdk_agent, transport=transport)
    assert echo.call is not None
    with pytest.raises(A2ATaskFailedError, match="boom"):
        await echo.call({"message": "fail"})
    asked = await echo.call({"message": "ask"})
    assert asked["state"] == "input-required" and asked["message"] == "which city?"


async def test_a_cancelled_tool_call_cancels_the_remote_task(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    """Regression (PenguiFlow PR #109 review): a tool call cancelled by its planner left the
    remote task running."""
    import asyncio

    (echo, _) = await a2a_agent_tools(sdk_agent, transport=transport)
    assert echo.call is not None
    async with httpx.AsyncClient() as client:

        async def working_tasks() -> list[str]:
            # the SDK lists tasks it holds; wait until ours is there and working
            answer = await client.get(
                f"{sdk_agent}/tasks",
                headers={"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"},
            )
            return [
                task["id"]
                for task in answer.json().get("tasks", [])
                if task["status"]["state"] == "TASK_STATE_WORKING"
            ]

        # Taken before the call starts: a call that reached the server during this first
        # listing would otherwise count as "before" and never be seen starting (a race that
        # showed on a loaded machine).
        before = set(await working_tasks())
        call = asyncio.ensure_future(echo.call({"message": "block"}))
        async with asyncio.timeout(20):
            while not (set(await working_tasks()) - before) and not call.done():
                await asyncio.sleep(0.02)
            started = set(await working_tasks()) - before
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        async with asyncio.timeout(20):
            while not started & set((await client.get(f"{sdk_agent}/_test/cancelled")).json()):
                await asyncio.sleep(0.02)


async def test_a_card_without_skills_or_interface_is_refused(
    transport: A2AHttpTransport,
) -> None:
    card = AgentCard(name="Quiet", description="does nothing", version="1")
    with pytest.raises(ConfigurationError, match="no HTTP\\+JSON interface"):
        await a2a_agent_tools(card, transport=transport)
    with pytest.raises(ConfigurationError, match="declares no skills"):
        await a2a_agent_tools(card, transport=transport, agent_url="http://127.0.0.1:9")
    with pytest.raises(InvalidTypeError, match="agent URL"):
        await a2a_agent_tools(42, transport=transport)  # type: ignore[arg-type]
    skilled = card.model_copy(
        update={"skills": [AgentSkill(id="s", name="S", description="does s")]}
    )
    (tool,) = await a2a_agent_tools(
        skilled.model_dump(by_alias=True), transport=transport, agent_url="http://x", prefix=""
    )
    assert tool.name == "s"
