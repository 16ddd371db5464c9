"""Native tool calling and image input over Chat Completions (issue 17, item 12), against a
real HTTP server on 127.0.0.1 answering in OpenAI's own shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai_server import completion
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from penguiflow_openai import OpenAIClient
from pydantic import BaseModel

from penguiflow.catalog import NodeSpec
from penguiflow.llm import (
    LLMConfigurationError,
    LLMImage,
    LLMMessage,
    LLMReplyError,
    ToolCallingLLMClient,
)
from penguiflow.testing import run_async

MODEL = "gpt-4o-mini-2024-07-18"


class WeatherArgs(BaseModel):
    city: str
    unit: str = "celsius"


WEATHER = NodeSpec(name="get_weather", desc="Current weather in a city", args_model=WeatherArgs)
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}


def calls_reply(*calls: tuple[str, str, str], content: str | None = None) -> ScriptedResponse:
    """A completion asking for tool calls, as OpenAI sends it (arguments as JSON text)."""
    tool_calls = [
        {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}
        for id_, name, arguments in calls
    ]
    return ScriptedResponse(
        body={
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "tool_calls": tool_calls,
                        "refusal": None,
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100},
        }
    )


def client_for(server: ScriptedHTTPServer) -> OpenAIClient:
    return OpenAIClient("gpt-4o-mini", base_url=server.url)


async def complete(client: OpenAIClient, **kwargs: Any) -> Any:
    try:
        return await client.complete(**kwargs)
    finally:
        await client.aclose()


def test_tools_go_out_and_calls_come_back(server: ScriptedHTTPServer) -> None:
    server.add(
        calls_reply(("call_1", "get_weather", '{"city": "Oslo"}'), ("call_2", "get_time", ""))
    )
    client = client_for(server)
    assert isinstance(client, ToolCallingLLMClient)
    reply = run_async(
        lambda: complete(
            client,
            messages=[{"role": "user", "content": "Weather and time in Oslo?"}],
            tools=[WEATHER, TIME],
        )
    )
    body = server.requests[0].json()
    assert [tool["function"]["name"] for tool in body["tools"]] == ["get_weather", "get_time"]
    weather = body["tools"][0]
    assert weather["type"] == "function"
    assert weather["function"]["description"] == "Current weather in a city"
    assert weather["function"]["parameters"]["required"] == ["city"]
    assert "tool_choice" not in body
    assert reply.finish_reason == "tool_calls" and reply.text == ""
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_1", "get_weather", {"city": "Oslo"}),
        ("call_2", "get_time", {}),
    ]
    assert reply.usage is not None and reply.usage.input_tokens == 80


def test_calls_and_results_go_back_natively(server: ScriptedHTTPServer) -> None:
    server.add(calls_reply(("call_1", "get_weather", '{"city": "Oslo"}')), completion("8°C"))
    client = client_for(server)
    question = LLMMessage(role="user", content="Weather in Oslo?")

    async def two_rounds() -> Any:
        first = await client.complete(messages=[question], tools=[WEATHER])
        results = [
            LLMMessage(role="tool", tool_call_id=call.id, content='{"temp": 8}')
            for call in first.tool_calls
        ]
        conversation = [question, first.assistant_message(), *results]
        return await complete(client, messages=conversation, tools=[WEATHER])

    final = run_async(two_rounds)
    assert final.text == "8°C" and final.tool_calls == []
    assert server.requests[1].json()["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 8}'},
    ]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choice_is_sent_in_openai_shape(
    server: ScriptedHTTPServer, choice: str, wire: Any
) -> None:
    server.add(completion("ok"))
    messages = [{"role": "user", "content": "hi"}]
    run_async(
        lambda: complete(client_for(server), messages=messages, tools=[WEATHER], tool_choice=choice)
    )
    assert server.requests[0].json()["tool_choice"] == wire


def test_tool_setup_errors_name_the_fix(server: ScriptedHTTPServer) -> None:
    messages = [{"role": "user", "content": "hi"}]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tools": [WEATHER], "tool_choice": "get_time"}, "one of the tools"),
        ({"tool_choice": "auto"}, "without tools"),
        ({"tools": [{"name": "bad name!", "parameters": {}}]}, r"tools\[0\].*letters"),
        ({"tools": [WEATHER, WEATHER]}, "more than one tool named"),
        ({"tools": [object()]}, "LLMTool, a NodeSpec or a mapping"),
    ]
    for kwargs, message in cases:
        with pytest.raises(LLMConfigurationError, match=message):
            run_async(lambda k=kwargs: complete(client_for(server), messages=messages, **k))
    assert server.requests == []


def test_arguments_that_are_not_json_raise_a_reply_error(server: ScriptedHTTPServer) -> None:
    server.add(calls_reply(("call_9", "get_weather", '{"city": "Os')))
    with pytest.raises(LLMReplyError, match=r"get_weather.*call_9.*not a JSON object"):
        run_async(
            lambda: complete(
                client_for(server), messages=[{"role": "user", "content": "?"}], tools=[WEATHER]
            )
        )


def tool_stream() -> ScriptedResponse:
    """Two parallel calls streamed as OpenAI streams them: id and name first, then the
    arguments in pieces, then finish_reason "tool_calls" and the usage chunk."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-3",
            "object": "chat.completion.chunk",
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **fields}]}

    events: list[dict[str, Any] | str] = [
        chunk({"role": "assistant", "content": None}),
        chunk(
            call(0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""})
        ),
        chunk(call(0, function={"arguments": '{"ci'})),
        chunk(call(0, function={"arguments": 'ty": "Oslo"}'})),
        chunk(
            call(1, id="call_b", type="function", function={"name": "get_time", "arguments": ""})
        ),
        chunk(call(1, function={"arguments": '{"tz": "Europe/Oslo"}'})),
        chunk({}, finish="tool_calls"),
        {
            "id": "chatcmpl-3",
            "model": MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 90, "completion_tokens": 30},
        },
        "[DONE]",
    ]
    return ScriptedResponse.sse(events)


def test_streamed_tool_call_deltas_are_put_together(server: ScriptedHTTPServer) -> None:
    server.add(tool_stream())
    chunks: list[tuple[str, bool]] = []
    reply = run_async(
        lambda: complete(
            client_for(server),
            messages=[{"role": "user", "content": "Weather and time?"}],
            tools=[WEATHER, TIME],
            stream=True,
            on_stream_chunk=lambda piece, done: chunks.append((piece, done)),
        )
    )
    assert server.requests[0].json()["stream"] is True
    assert reply.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_a", "get_weather", {"city": "Oslo"}),
        ("call_b", "get_time", {"tz": "Europe/Oslo"}),
    ]
    # Arguments are not the reply's text: no text chunk was sent, only the end marker.
    assert chunks == [("", True)]
    assert reply.usage is not None and reply.usage.output_tokens == 30


# -- images ----------------------------------------------------------------------------------


def test_images_become_image_url_parts(server: ScriptedHTTPServer) -> None:
    server.add(completion("a penguin"))
    image_bytes = "iVBORw0KGgo="
    message = LLMMessage(
        role="user",
        content="What is in these?",
        images=[
            LLMImage(url="https://example.com/penguin.jpg", detail="low"),
            LLMImage(data=image_bytes, media_type="image/png"),
        ],
    )
    reply = run_async(lambda: complete(client_for(server), messages=[message]))
    assert reply.text == "a penguin"
    assert server.requests[0].json()["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/penguin.jpg", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image_bytes}"}},
                {"type": "text", "text": "What is in these?"},
            ],
        }
    ]


def test_image_mistakes_are_caught_before_sending(server: ScriptedHTTPServer) -> None:
    bad: list[dict[str, Any]] = [
        {"role": "user", "content": "?", "images": [{"data": "AAAA"}]},
        {"role": "user", "content": "?", "images": [{}]},
        {"role": "assistant", "content": "?", "images": [{"url": "https://x/y.png"}]},
        {"role": "user", "content": "?", "images": [{"url": "data:image/png,notbase64"}]},
    ]
    for message in bad:
        with pytest.raises(ValueError, match=r"messages\[0\]"):
            run_async(lambda m=message: complete(client_for(server), messages=[m]))
    assert server.requests == []
    assert json.loads(json.dumps(LLMImage(url="data:image/gif;base64,R0lG").model_dump())) == {
        "url": None,
        "data": "R0lG",
        "media_type": "image/gif",
        "detail": None,
    }
