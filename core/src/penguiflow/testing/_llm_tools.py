"""The native tool calling and image input cases of `LLMAdapterConformance`.

The suite cannot know a provider's wire format, so a subclass that turns a case on does two
things: it scripts its model's replies from provider-neutral `LLMResponse`s (text and tool
calls), and it says what a tool, a tool call, a tool result and an image look like in its
requests. The suite then checks that those shapes are in what the adapter sent, and that
what came back is the scripted reply, whether the request streamed or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from ..llm import (
    LLMConfigurationError,
    LLMImage,
    LLMMessage,
    LLMResponse,
    LLMTool,
    LLMToolCall,
    ToolCallingLLMClient,
    tool_definitions,
)
from ._support import close_quietly, run_with_resource

__all__ = ["ToolAndImageCases", "contains_shape"]

WEATHER = LLMTool(
    name="get_weather",
    description="Current weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
)
#: The other accepted spelling of a tool: OpenAI's function mapping.
TIME: Mapping[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a time zone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}
#: A 1x1 transparent PNG.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg=="
)


def contains_shape(found: Any, expected: Any) -> bool:
    """True when `expected` matches `found` or any mapping or list nested in it. A mapping
    matches when each of its keys matches (extra keys in `found` are fine: adapters may add
    fields such as cache hints), a list when it has the same length and its items match in
    order, anything else when equal."""
    if _matches(found, expected):
        return True
    if isinstance(found, Mapping):
        return any(contains_shape(value, expected) for value in found.values())
    if isinstance(found, list):
        return any(contains_shape(item, expected) for item in found)
    return False


def _matches(found: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(found, Mapping) and all(
            key in found and _matches(found[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(found, list)
            and len(found) == len(expected)
            and all(_matches(a, b) for a, b in zip(found, expected, strict=True))
        )
    return bool(found == expected)


def _calls(response: LLMResponse) -> list[tuple[str, str, dict[str, Any]]]:
    return [(call.id, call.name, call.arguments) for call in response.tool_calls]


class ToolAndImageCases:
    """Cases for adapters that offer native tools (`supports_tools = True`) or take images
    (`supports_images = True`); with a flag False its cases skip, saying so.

    Implement, for those cases:
    - `make_tool_client(replies)`: a client whose model answers the next calls with
      `replies`, in order and in the provider's wire format: each reply's text, and its
      `tool_calls` as the provider's tool calls (`finish_reason` says why it stopped). When a
      request streams, send the reply streamed, the calls as tool-call deltas with their
      arguments in more than one piece.
    - `sent_requests(client)`: the JSON bodies of the requests the client sent, oldest first.
    - `wire_tool`, `wire_tool_call`, `wire_tool_result`, `wire_image`: the provider's shape of
      each (or the part of it worth checking); each must appear somewhere in the request.
    """

    supports_tools: ClassVar[bool] = False
    supports_images: ClassVar[bool] = False

    async def make_tool_client(self, replies: list[LLMResponse]) -> ToolCallingLLMClient:
        raise NotImplementedError(
            "implement make_tool_client(replies) for your adapter, or set supports_tools and "
            "supports_images to False"
        )

    async def close_client(self, client: Any) -> None:
        await close_quietly(client)

    def sent_requests(self, client: Any) -> Sequence[Mapping[str, Any]]:
        raise NotImplementedError("implement sent_requests(client): the JSON bodies sent")

    def wire_tool(self, tool: LLMTool) -> Mapping[str, Any]:
        raise NotImplementedError("implement wire_tool(tool): the provider's tool definition")

    def wire_tool_call(self, call: LLMToolCall) -> Mapping[str, Any]:
        raise NotImplementedError("implement wire_tool_call(call): a tool call sent back")

    def wire_tool_result(self, call_id: str, content: str) -> Mapping[str, Any]:
        raise NotImplementedError("implement wire_tool_result(call_id, content)")

    def wire_image(self, image: LLMImage) -> Mapping[str, Any]:
        raise NotImplementedError("implement wire_image(image): the provider's image part")

    # -- helpers --------------------------------------------------------------------------

    def _needs(self, flag: str, what: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False: the adapter {what}")

    def _run_tools(self, replies: list[LLMResponse], scenario: Any) -> None:
        run_with_resource(lambda: self.make_tool_client(replies), self.close_client, scenario)

    def _request(self, client: Any, index: int) -> Mapping[str, Any]:
        sent = list(self.sent_requests(client))
        assert len(sent) > index, f"expected at least {index + 1} request(s), got {len(sent)}"
        return sent[index]

    def _assert_sent(self, body: Mapping[str, Any], expected: Mapping[str, Any], what: str) -> None:
        assert contains_shape(body, expected), (
            f"{what} is not in the request as {dict(expected)!r}; the request was {dict(body)!r}"
        )

    # -- tools ----------------------------------------------------------------------------

    def test_tools_reach_the_request_and_calls_come_back(self) -> None:
        self._needs("supports_tools", "offers no native tool calling")
        calls = [
            LLMToolCall(id="call_w1", name="get_weather", arguments={"city": "Oslo"}),
            LLMToolCall(id="call_t1", name="get_time", arguments={}),
        ]
        reply = LLMResponse(text="", tool_calls=calls, finish_reason="tool_calls")

        async def scenario(client: Any) -> None:
            assert isinstance(client, ToolCallingLLMClient)
            response = await client.complete(
                messages=[{"role": "user", "content": "Weather and time in Oslo?"}],
                tools=[WEATHER, TIME],
            )
            assert response.finish_reason == "tool_calls"
            assert _calls(response) == _calls(reply)
            body = self._request(client, 0)
            for tool in tool_definitions([WEATHER, TIME]):
                self._assert_sent(body, self.wire_tool(tool), f"tool {tool.name!r}")

        self._run_tools([reply], scenario)

    def test_streamed_tool_call_deltas_are_put_together(self) -> None:
        self._needs("supports_tools", "offers no native tool calling")
        call = LLMToolCall(
            id="call_w2", name="get_weather", arguments={"city": "Tromsø", "unit": "celsius"}
        )
        reply = LLMResponse(text="Let me check.", tool_calls=[call], finish_reason="tool_calls")

        async def scenario(client: Any) -> None:
            pieces: list[str] = []
            finished: list[bool] = []

            def collect(piece: str, done: bool) -> None:
                pieces.append(piece)
                finished.append(done)

            response = await client.complete(
                messages=[{"role": "user", "content": "Weather in Tromsø?"}],
                tools=[WEATHER],
                stream=True,
                on_stream_chunk=collect,
            )
            # Arguments are not text: only the reply's words reach the stream callback.
            assert response.text == "Let me check." and "".join(pieces) == "Let me check."
            assert finished and finished[-1] is True
            assert response.finish_reason == "tool_calls"
            assert _calls(response) == _calls(reply)

        self._run_tools([reply], scenario)

    def test_tool_results_round_trip(self) -> None:
        self._needs("supports_tools", "offers no native tool calling")
        call = LLMToolCall(id="call_w3", name="get_weather", arguments={"city": "Bergen"})
        replies = [
            LLMResponse(text="", tool_calls=[call], finish_reason="tool_calls"),
            LLMResponse(text="It is 8 degrees in Bergen.", finish_reason="stop"),
        ]
        question = LLMMessage(role="user", content="Weather in Bergen?")

        async def scenario(client: Any) -> None:
            first = await client.complete(messages=[question], tools=[WEATHER])
            results = [
                LLMMessage(role="tool", tool_call_id=asked.id, content='{"temp": 8}')
                for asked in first.tool_calls
            ]
            conversation = [question, first.assistant_message(), *results]
            final = await client.complete(messages=conversation, tools=[WEATHER])
            assert final.text == "It is 8 degrees in Bergen." and final.tool_calls == []
            body = self._request(client, 1)
            self._assert_sent(body, self.wire_tool_call(call), "the assistant's tool call")
            self._assert_sent(
                body, self.wire_tool_result(call.id, '{"temp": 8}'), "the tool's result"
            )

        self._run_tools(replies, scenario)

    def test_tool_mistakes_are_refused_before_sending(self) -> None:
        self._needs("supports_tools", "offers no native tool calling")

        async def scenario(client: Any) -> None:
            messages = [{"role": "user", "content": "hi"}]
            with pytest.raises(LLMConfigurationError):
                await client.complete(messages=messages, tools=[WEATHER], tool_choice="get_time")
            with pytest.raises(LLMConfigurationError, match="more than one tool named"):
                await client.complete(messages=messages, tools=[WEATHER, WEATHER])
            with pytest.raises(LLMConfigurationError, match=r"tools\[0\]"):
                await client.complete(messages=messages, tools=[{"name": "bad name!"}])
            assert list(self.sent_requests(client)) == []

        self._run_tools([LLMResponse(text="unused")], scenario)

    # -- images ---------------------------------------------------------------------------

    def test_images_reach_the_request_in_the_provider_format(self) -> None:
        self._needs("supports_images", "takes no image input")
        images = [
            LLMImage(url="https://example.com/penguin.jpg"),
            LLMImage(data=PNG_BASE64, media_type="image/png"),
        ]

        async def scenario(client: Any) -> None:
            message = LLMMessage(role="user", content="What is in these?", images=images)
            response = await client.complete(messages=[message])
            assert response.text == "A penguin."
            body = self._request(client, 0)
            for index, image in enumerate(images):
                self._assert_sent(body, self.wire_image(image), f"images[{index}]")
            # The text part's shape varies more than an image's (a string, or a part with
            # the provider's keys), so the suite only asks that the text is sent.
            assert contains_shape(body, "What is in these?"), f"no message text in {body!r}"

        self._run_tools([LLMResponse(text="A penguin.", finish_reason="stop")], scenario)

    def test_images_outside_user_messages_are_refused(self) -> None:
        self._needs("supports_images", "takes no image input")

        async def scenario(client: Any) -> None:
            bad = {"role": "assistant", "content": "?", "images": [{"url": "https://x/y.png"}]}
            with pytest.raises(ValueError, match=r"messages\[0\]"):
                await client.complete(messages=[bad])
            assert list(self.sent_requests(client)) == []

        self._run_tools([LLMResponse(text="unused")], scenario)
