"""Sampling: the reference server's `trigger-sampling-request` is answered by a real
penguiflow LLM adapter (penguiflow-openai) talking to a scripted OpenAI-compatible server on
127.0.0.1, over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from penguiflow_mcp import MCPConnector, MCPServerConfig, MCPToolError
from penguiflow_mcp._sampling import SamplingAnswer, stop_reason
from penguiflow_openai import OpenAIClient

from penguiflow.llm import LLMResponse


@pytest.fixture
def llm_server() -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as server:
        yield server


def _completion(text: str, finish_reason: str, model: str = "tiny-model-7") -> dict[str, object]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def _sampled(text: str) -> dict[str, object]:
    """The CreateMessageResult the server echoes back in its tool result."""
    payload = text[text.index("{") :]
    result: dict[str, object] = json.loads(payload)
    return result


def test_sampling_is_answered_by_the_configured_llm_client(
    everything: Callable[..., MCPServerConfig], llm_server: ScriptedHTTPServer
) -> None:
    llm_server.add(ScriptedResponse(body=_completion("Penguins swim.", "length")))
    llm = OpenAIClient("tiny-model", base_url=f"{llm_server.url}/v1", temperature=0.1)

    async def scenario() -> None:
        async with MCPConnector(everything(), sampling=llm) as connector:
            result = await connector.call_tool(
                "trigger-sampling-request", {"prompt": "about penguins", "maxTokens": 17}
            )
        await llm.aclose()
        sampled = _sampled(result.text)
        assert sampled["model"] == "tiny-model-7"
        assert sampled["stopReason"] == "maxTokens"
        assert sampled["content"] == {"type": "text", "text": "Penguins swim."}

    asyncio.run(scenario())
    body = llm_server.requests[0].json()
    # The server's systemPrompt, its message, maxTokens and temperature reached the model.
    assert body["messages"][0] == {"role": "system", "content": "You are a helpful test server."}
    assert "about penguins" in json.dumps(body["messages"][1])
    assert body["max_tokens"] == 17
    assert body["temperature"] == 0.7
    # The client's own options are untouched: the server's were for that request only.
    assert llm.options == {"temperature": 0.1}


def test_a_failing_llm_call_answers_the_server_an_error_naming_the_cause(
    everything: Callable[..., MCPServerConfig], llm_server: ScriptedHTTPServer
) -> None:
    llm_server.add(
        ScriptedResponse(
            status=401,
            body={"error": {"message": "Incorrect API key provided", "type": "invalid_request"}},
        )
    )
    llm = OpenAIClient("tiny-model", base_url=f"{llm_server.url}/v1")

    async def scenario() -> None:
        async with MCPConnector(everything(), sampling=llm) as connector:
            with pytest.raises(MCPToolError) as raised:
                await connector.call_tool("trigger-sampling-request", {"prompt": "hi"})
        await llm.aclose()
        text = str(raised.value)
        assert "trigger-sampling-request" in text
        assert "sampling for MCP server 'everything' failed" in text
        assert "401" in text or "Incorrect API key" in text

    asyncio.run(scenario())


def test_sampling_is_offered_only_with_a_client(
    everything: Callable[..., MCPServerConfig],
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            names = {tool.name for tool in await connector.list_tools()}
        # The reference server offers the tool only to clients that declare sampling.
        assert "trigger-sampling-request" not in names

    asyncio.run(scenario())


class _Recorder:
    def __init__(self, response: LLMResponse) -> None:
        self.response = response
        self.messages: list[object] = []

    async def complete(self, *, messages: object, **_: object) -> LLMResponse:
        self.messages.append(messages)
        return self.response


def test_messages_with_images_and_stop_sequences_are_mapped() -> None:
    import mcp_types as types

    llm = _Recorder(LLMResponse(text="a cat", finish_reason="stop", model=None))
    params = types.CreateMessageRequestParams(
        messages=[
            types.SamplingMessage(
                role="user",
                content=[
                    types.TextContent(type="text", text="what is this?"),
                    types.ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
                ],
            ),
        ],
        max_tokens=5,
        stop_sequences=["END"],
    )
    result = asyncio.run(SamplingAnswer(llm, "srv")(None, params))
    (messages,) = llm.messages
    assert isinstance(messages, list)
    assert messages[0].content == "what is this?"
    assert messages[0].images[0].media_type == "image/png"
    assert result.model == "_Recorder"  # no model name anywhere: the client's type
    assert result.stop_reason == "endTurn"

    audio = types.CreateMessageRequestParams(
        messages=[
            types.SamplingMessage(
                role="user",
                content=types.AudioContent(type="audio", data="AA==", mime_type="audio/wav"),
            )
        ],
        max_tokens=5,
    )
    error = asyncio.run(SamplingAnswer(llm, "srv")(None, audio))
    assert "audio part" in error.message and "'srv'" in error.message


def test_finish_reasons_become_stop_reasons() -> None:
    assert stop_reason("stop") == "endTurn"
    assert stop_reason("length") == "maxTokens"
    assert stop_reason("stop_sequence") == "stopSequence"
    assert stop_reason("content_filter") == "content_filter"
    assert stop_reason(None) is None
