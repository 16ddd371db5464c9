"""Replies in the Chat Completions format, for the ScriptedHTTPServer the tests run."""

from __future__ import annotations

from typing import Any

from penguiflow_llm_http.testing import RecordedRequest, ScriptedResponse


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
