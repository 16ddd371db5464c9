"""Native tool calling and image input over the Messages API (issue 17, item 12), against a
real HTTP server on 127.0.0.1 answering in Anthropic's own shapes."""

from __future__ import annotations

from typing import Any

from anthropic_server import MODEL, message
from penguiflow_anthropic import AnthropicClient
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from pydantic import BaseModel

from penguiflow.llm import LLMImage, LLMMessage, LLMTool
from penguiflow.testing import run_async

WEATHER = LLMTool(
    name="get_weather",
    description="Current weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


class Answer(BaseModel):
    answer: str


def tool_use_reply(
    *calls: tuple[str, str, dict[str, Any]], text: str | None = None
) -> ScriptedResponse:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    content += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls]
    return ScriptedResponse(
        body={
            "id": "msg_2",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 300, "output_tokens": 40},
        }
    )


def client_for(server: ScriptedHTTPServer) -> AnthropicClient:
    return AnthropicClient("claude-3-5-haiku-latest", base_url=server.url, api_key="sk-ant-test")


async def complete(client: AnthropicClient, **kwargs: Any) -> Any:
    try:
        return await client.complete(**kwargs)
    finally:
        await client.aclose()


def test_tools_go_out_and_tool_use_comes_back(server: ScriptedHTTPServer) -> None:
    server.add(tool_use_reply(("toolu_01", "get_weather", {"city": "Oslo"}), text="Checking."))
    reply = run_async(
        lambda: complete(
            client_for(server),
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=[WEATHER],
            tool_choice="required",
        )
    )
    body = server.requests[0].json()
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather in a city",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert reply.finish_reason == "tool_calls" and reply.text == "Checking."
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("toolu_01", "get_weather", {"city": "Oslo"})
    ]


def test_tool_use_and_tool_result_blocks_go_back(server: ScriptedHTTPServer) -> None:
    server.add(tool_use_reply(("toolu_01", "get_weather", {"city": "Oslo"})), message("8°C."))
    question = LLMMessage(role="user", content="Weather in Oslo?")
    client = client_for(server)

    async def two_rounds() -> Any:
        first = await client.complete(messages=[question], tools=[WEATHER])
        result = LLMMessage(role="tool", tool_call_id="toolu_01", content='{"temp": 8}')
        follow_up = LLMMessage(role="user", content="Thanks. Warm?")
        conversation = [question, first.assistant_message(), result, follow_up]
        return await complete(client, messages=conversation, tools=[WEATHER])

    assert run_async(two_rounds).text == "8°C."
    assert server.requests[1].json()["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": '{"temp": 8}'},
                {"type": "text", "text": "Thanks. Warm?"},
            ],
        },
    ]


def test_a_schema_with_tools_leaves_the_model_free_to_call_them(
    server: ScriptedHTTPServer,
) -> None:
    server.add(tool_use_reply(("toolu_02", "get_weather", {"city": "Bergen"})))
    reply = run_async(
        lambda: complete(
            client_for(server),
            messages=[{"role": "user", "content": "Weather in Bergen?"}],
            tools=[WEATHER],
            response_format=Answer,
        )
    )
    body = server.requests[0].json()
    # No forced reply tool (it would forbid the caller's tools) and no prefill: the schema
    # is in the system prompt.
    assert [tool["name"] for tool in body["tools"]] == ["get_weather"]
    assert "tool_choice" not in body and body["messages"][-1]["role"] == "user"
    assert "answer" in body["system"]
    assert reply.tool_calls[0].arguments == {"city": "Bergen"}


def test_streamed_tool_use_is_put_together(server: ScriptedHTTPServer) -> None:
    """The events Anthropic streams for a text block and then a tool_use block."""
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {"model": MODEL, "usage": {"input_tokens": 310, "output_tokens": 1}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_03",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Tr'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'omsø"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 55},
        },
        {"type": "message_stop"},
    ]
    names: list[str | None] = [str(event["type"]) for event in events]
    server.add(ScriptedResponse.sse(events, event_names=names))  # type: ignore[arg-type]
    chunks: list[str] = []
    reply = run_async(
        lambda: complete(
            client_for(server),
            messages=[{"role": "user", "content": "Weather in Tromsø?"}],
            tools=[WEATHER],
            stream=True,
            on_stream_chunk=lambda piece, done: chunks.append(piece),
        )
    )
    assert reply.text == "Let me check." and "".join(chunks) == "Let me check."
    assert reply.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("toolu_03", "get_weather", {"city": "Tromsø"})
    ]
    assert reply.usage is not None and reply.usage.output_tokens == 55


def test_images_become_image_blocks(server: ScriptedHTTPServer) -> None:
    server.add(message("a penguin"))
    image = LLMMessage(
        role="user",
        content="What is this?",
        images=[
            LLMImage(url="https://example.com/penguin.jpg"),
            LLMImage(url="data:image/jpeg;base64,/9j/4AAQ"),
        ],
    )
    assert run_async(lambda: complete(client_for(server), messages=[image])).text == "a penguin"
    assert server.requests[0].json()["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "url", "url": "https://example.com/penguin.jpg"},
                },
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
                },
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]
