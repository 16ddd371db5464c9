"""Replies in the Anthropic Messages format, for the ScriptedHTTPServer the tests run."""

from __future__ import annotations

import json
from typing import Any

from penguiflow_llm_http.testing import RecordedRequest, ScriptedResponse

from penguiflow.llm import LLMResponse

MODEL = "claude-3-5-haiku-20241022"


def message(
    text: str | None = None,
    *,
    tool_input: dict[str, Any] | None = None,
    thinking: str | None = None,
    usage: tuple[int, int] = (20, 6),
) -> ScriptedResponse:
    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append({"type": "thinking", "thinking": thinking, "signature": "sig"})
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool_input is not None:
        content.append({"type": "tool_use", "id": "toolu_1", "name": "Answer", "input": tool_input})
    return ScriptedResponse(
        body={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": "end_turn",
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
    )


def streamed(
    pieces: list[str],
    *,
    thinking: list[str] = (),  # type: ignore[assignment]
    tool_json: bool = False,
    usage: tuple[int, int] = (20, 6),
    cut_after: int | None = None,
    stop: bool = True,
) -> ScriptedResponse:
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {"model": MODEL, "usage": {"input_tokens": usage[0], "output_tokens": 1}},
        },
        {"type": "ping"},
    ]
    for piece in thinking:
        events.append(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": piece},
            }
        )
    block = (
        {"type": "tool_use", "id": "t", "name": "Answer", "input": {}}
        if tool_json
        else {"type": "text", "text": ""}
    )
    events.append({"type": "content_block_start", "index": 1, "content_block": block})
    for piece in pieces:
        delta = (
            {"type": "input_json_delta", "partial_json": piece}
            if tool_json
            else {"type": "text_delta", "text": piece}
        )
        events.append({"type": "content_block_delta", "index": 1, "delta": delta})
    events.append({"type": "content_block_stop", "index": 1})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": usage[1]},
        }
    )
    if stop:
        events.append({"type": "message_stop"})
    names: list[str | None] = [str(event["type"]) for event in events]
    return ScriptedResponse.sse(events, event_names=names, cut_after=cut_after)  # type: ignore[arg-type]


def answering(text: str) -> Any:
    def respond(request: RecordedRequest) -> ScriptedResponse:
        if request.json().get("stream"):
            return streamed([text[i : i + 6] for i in range(0, len(text), 6)])
        return message(text)

    return respond


def replying(response: LLMResponse) -> Any:
    """`response` (text, tool calls) as Anthropic sends it: one message of text and
    `tool_use` blocks, or its events when the request streams (each tool's input as two
    `input_json_delta` pieces), for the kernel's conformance cases."""

    def respond(request: RecordedRequest) -> ScriptedResponse:
        stop = "tool_use" if response.tool_calls else "end_turn"
        if not request.json().get("stream"):
            content: list[dict[str, Any]] = []
            if response.text:
                content.append({"type": "text", "text": response.text})
            content += [
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                for call in response.tool_calls
            ]
            return ScriptedResponse(
                body={
                    "id": "msg_c",
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 40, "output_tokens": 9},
                }
            )
        events: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {"model": MODEL, "usage": {"input_tokens": 40, "output_tokens": 1}},
            }
        ]
        index = 0
        if response.text:
            text = response.text
            events.append(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            events += [
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text[i : i + 5]},
                }
                for i in range(0, len(text), 5)
            ]
            events.append({"type": "content_block_stop", "index": 0})
            index = 1
        for offset, call in enumerate(response.tool_calls):
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            at = index + offset
            events.append({"type": "content_block_start", "index": at, "content_block": block})
            arguments = json.dumps(call.arguments)
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append({"type": "content_block_delta", "index": at, "delta": delta})
            events.append({"type": "content_block_stop", "index": at})
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop},
                "usage": {"output_tokens": 9},
            }
        )
        events.append({"type": "message_stop"})
        names: list[str | None] = [str(event["type"]) for event in events]
        return ScriptedResponse.sse(events, event_names=names)  # type: ignore[arg-type]

    return respond
