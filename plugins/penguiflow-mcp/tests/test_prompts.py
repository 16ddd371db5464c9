"""Prompts of the reference everything server, over stdio and streamable HTTP: listed,
rendered as penguiflow LLM messages (embedded resources included), completed, and checked
for missing arguments before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from penguiflow_mcp import MCPConnector, MCPError, MCPPromptError, MCPServerConfig

from penguiflow.llm import LLMMessage


def test_lists_and_renders_prompts(everything: Callable[..., MCPServerConfig]) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            prompts = {p.name: p for p in await connector.list_prompts()}
            args = prompts["args-prompt"].arguments
            assert [(a.name, a.required) for a in args] == [("city", True), ("state", False)]

            simple = await connector.get_prompt("simple-prompt")
            assert all(isinstance(m, LLMMessage) for m in simple.messages)
            assert simple.messages[0].role == "user" and simple.messages[0].content

            rendered = await connector.get_prompt("args-prompt", {"city": "Lima"})
            assert "Lima" in rendered.messages[0].content

            embedded = await connector.get_prompt(
                "resource-prompt", {"resourceType": "Text", "resourceId": "4"}
            )
            texts = "\n".join(m.content for m in embedded.messages)
            assert "[resource demo://resource/dynamic/text/4]" in texts
            blob = await connector.get_prompt(
                "resource-prompt", {"resourceType": "Blob", "resourceId": "4"}
            )
            note = "\n".join(m.content for m in blob.messages)
            assert "binary resource demo://resource/dynamic/blob/4" in note
            assert "left out" in note  # its base64 never reaches the model

    asyncio.run(scenario())


def test_completions_of_prompt_arguments(everything: Callable[..., MCPServerConfig]) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            first = await connector.complete("department", "S", prompt="completable-prompt")
            assert set(first.values) == {"Sales", "Support"}
            names = await connector.complete(
                "name", "", prompt="completable-prompt", context={"department": "Engineering"}
            )
            assert names.values == ("Alice", "Bob", "Charlie")

    asyncio.run(scenario())


def test_argument_errors_are_caught_before_sending(
    everything: Callable[..., MCPServerConfig],
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            with pytest.raises(MCPPromptError, match=r"'args-prompt'.*'everything'.*'city'"):
                await connector.get_prompt("args-prompt", {"state": "CA"})
            with pytest.raises(MCPPromptError, match="'town'"):
                await connector.get_prompt("args-prompt", {"city": "x", "town": "y"})
            with pytest.raises(MCPError, match="no prompt 'nope'; it has: args-prompt"):
                await connector.get_prompt("nope")
            with pytest.raises(ValueError, match="exactly one of prompt="):
                await connector.complete("x")

    asyncio.run(scenario())
