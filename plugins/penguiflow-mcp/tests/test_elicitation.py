"""Elicitation: the reference server's `trigger-elicitation-request` asks for input during
the call; a callback answers it (accept with content checked against the requested schema,
decline), a planner pauses for a human and replans with the input on resume, and without
either the server is answered cancel, over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import pytest
from penguiflow_mcp import (
    ElicitationAnswer,
    ElicitationRequest,
    MCPConnector,
    MCPElicitationError,
    MCPServerConfig,
    catalog_from,
)
from penguiflow_planner import PlannerFinish, PlannerPause, ReactPlanner

from penguiflow.llm import ScriptedLLMClient

TOOL = "trigger-elicitation-request"


def test_a_callback_accepts_with_content(everything: Callable[..., MCPServerConfig]) -> None:
    seen: list[ElicitationRequest] = []

    async def answer(request: ElicitationRequest) -> ElicitationAnswer:
        seen.append(request)
        return ElicitationAnswer.accept({"name": "Ada Lovelace", "check": True, "integer": 7})

    async def scenario() -> None:
        async with MCPConnector(everything(), elicitation=answer) as connector:
            result = await connector.call_tool(TOOL, {})
        assert "User provided the requested information" in result.text
        assert "Ada Lovelace" in result.text

    asyncio.run(scenario())
    (request,) = seen
    assert request.server == "everything" and request.tool == TOOL
    assert request.mode == "form" and request.message.startswith("Please provide inputs")
    assert request.requested_schema is not None
    assert request.requested_schema["required"] == ["name"]


def test_a_callback_declines(everything: Callable[..., MCPServerConfig]) -> None:
    async def answer(request: ElicitationRequest) -> ElicitationAnswer:
        return ElicitationAnswer.decline()

    async def scenario() -> None:
        async with MCPConnector(everything(), elicitation=answer) as connector:
            result = await connector.call_tool(TOOL, {})
        assert "User declined" in result.text

    asyncio.run(scenario())


def test_content_not_matching_the_schema_is_not_sent(
    everything: Callable[..., MCPServerConfig],
) -> None:
    async def answer(request: ElicitationRequest) -> ElicitationAnswer:
        # `name` is required and `integer` must be 1..100
        return ElicitationAnswer.accept({"integer": 1000})

    async def scenario() -> None:
        async with MCPConnector(everything(), elicitation=answer) as connector:
            with pytest.raises(MCPElicitationError) as raised:
                await connector.call_tool(TOOL, {})
            # The server got cancel, not the content: the connector still works.
            assert "3" in (await connector.call_tool("get-sum", {"a": 1, "b": 2})).text
        text = str(raised.value)
        assert "everything.trigger-elicitation-request" in text
        assert "does not match the schema" in text and "not sent" in text
        assert "name" in text and "integer" in text

    asyncio.run(scenario())


def test_without_callback_or_planner_the_server_gets_cancel_and_a_line_is_logged(
    everything: Callable[..., MCPServerConfig], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            result = await connector.call_tool(TOOL, {})
        assert "User cancelled" in result.text

    with caplog.at_level(logging.INFO, logger="penguiflow.mcp"):
        asyncio.run(scenario())
    assert any("Pass elicitation=" in r.getMessage() for r in caplog.records)


def test_a_planner_pauses_for_a_human_and_replans_with_the_input_on_resume(
    everything: Callable[..., MCPServerConfig],
) -> None:
    llm = ScriptedLLMClient(
        [
            json.dumps({"next_node": f"everything.{TOOL}", "args": {}}),
            json.dumps({"next_node": None, "args": {"answer": "registered Ada"}}),
        ]
    )

    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            catalog = await catalog_from([connector])
            planner = ReactPlanner(llm_client=llm, catalog=catalog)
            paused = await planner.run("Register me")
            assert isinstance(paused, PlannerPause) and paused.reason == "await_input"
            payload = paused.payload
            assert payload["server"] == "everything" and payload["tool"] == TOOL
            assert payload["message"].startswith("Please provide inputs")
            assert payload["requested_schema"]["required"] == ["name"]
            result = await planner.resume(paused.resume_token, user_input="My name is Ada")
        assert isinstance(result, PlannerFinish)
        assert result.payload["raw_answer"] == "registered Ada"
        # The model planned again with the human's input.
        assert "My name is Ada" in "\n".join(m.content for m in llm.calls[1].messages)

    asyncio.run(scenario())


def test_an_elicitation_with_several_calls_in_flight_is_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import mcp_types as types
    from penguiflow_mcp._elicitation import Elicitations

    elicitations = Elicitations("srv", None)
    params = types.ElicitRequestFormParams(
        message="who?", requested_schema={"type": "object", "properties": {}}
    )

    async def scenario() -> None:
        with elicitations.tracking("a"), elicitations.tracking("b"):
            answer = await elicitations(None, params)
        assert answer.action == "cancel"

    with caplog.at_level(logging.WARNING, logger="penguiflow.mcp"):
        asyncio.run(scenario())
    assert any("2 calls were in flight (a, b)" in r.getMessage() for r in caplog.records)
