"""Replies in the Chat Completions format, for the ScriptedHTTPServer the tests run."""

from __future__ import annotations

import json
from typing import Any

from penguiflow_llm_http.testing import RecordedRequest, ScriptedResponse

from penguiflow.llm import LLMResponse


def completion(
    text: str | None,
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    usage: tuple[int, int] = (12, 5),
    reasoning: str | None = None,
) -> ScriptedResponse:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return ScriptedResponse(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }
    )


def stream_events(
    pieces: list[str],
    *,
    reasoning: list[str] = (),  # type: ignore[assignment]
    usage: tuple[int, int] = (12, 5),
    model: str = "gpt-4o-mini-2024-07-18",
    done: bool = True,
) -> list[dict[str, Any] | str]:
    events: list[dict[str, Any] | str] = []
    for piece in reasoning:
        events.append({"model": model, "choices": [{"delta": {"reasoning_content": piece}}]})
    for piece in pieces:
        events.append({"model": model, "choices": [{"delta": {"content": piece}}]})
    events.append(
        {
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
        }
    )
    if done:
        events.append("[DONE]")
    return events


def streamed(pieces: list[str], **options: Any) -> ScriptedResponse:
    cut_after = options.pop("cut_after", None)
    return ScriptedResponse.sse(stream_events(pieces, **options), cut_after=cut_after)


def answering(text: str) -> Any:
    """A JSON or a streamed reply of `text`, whichever the request asks for."""

    def respond(request: RecordedRequest) -> ScriptedResponse:
        if request.json().get("stream"):
            return streamed([text[i : i + 7] for i in range(0, len(text), 7)])
        return completion(text)

    return respond


def replying(response: LLMResponse, *, model: str = "gpt-4o-mini-2024-07-18") -> Any:
    """`response` (text, tool calls, finish reason) as OpenAI sends it: one completion, or
    streamed chunks when the request streams (each call's id and name first, then its
    arguments in two pieces), for the kernel's conformance cases."""

    def respond(request: RecordedRequest) -> ScriptedResponse:
        finish = response.finish_reason or ("tool_calls" if response.tool_calls else "stop")
        calls = [(call.id, call.name, json.dumps(call.arguments)) for call in response.tool_calls]
        if not request.json().get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": response.text or None}
            if calls:
                message["tool_calls"] = [
                    {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}
                    for id_, name, args in calls
                ]
            return ScriptedResponse(
                body={
                    "id": "chatcmpl-c",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
                }
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-c",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        events: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
        text = response.text
        events += [chunk({"content": text[i : i + 5]}) for i in range(0, len(text), 5)]
        for index, (id_, name, args) in enumerate(calls):
            start = {"id": id_, "type": "function", "function": {"name": name, "arguments": ""}}
            events.append(chunk({"tool_calls": [{"index": index, **start}]}))
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                delta = {"index": index, "function": {"arguments": piece}}
                events.append(chunk({"tool_calls": [delta]}))
        events.append(chunk({}, finish))
        events.append(
            {"model": model, "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 9}}
        )
        events.append("[DONE]")
        return ScriptedResponse.sse(events)

    return respond
