"""Sampling: a server asks the client's model for a completion (`sampling/createMessage`).

The connector answers with the penguiflow LLM client it was given (`sampling=`): the
request's messages (text and image parts) and system prompt become `LLMMessage`s; its
`maxTokens`, `temperature` and `stopSequences` become request options of that client; the
answer carries the model's name and why it stopped (`endTurn`, `maxTokens`, `stopSequence`).
A failing model call answers the server an error naming the cause, never a made-up reply.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from penguiflow.errors import PenguiFlowError, describe_exception
from penguiflow.llm import JSONLLMClient, LLMImage, LLMMessage

__all__ = ["SamplingAnswer", "stop_reason"]

logger = logging.getLogger("penguiflow.mcp")

#: `LLMResponse.finish_reason` (penguiflow's vocabulary) as MCP's `stopReason`
_STOP_REASONS = {
    "stop": "endTurn",
    "length": "maxTokens",
    "stop_sequence": "stopSequence",
    "tool_calls": "toolUse",
}


def stop_reason(finish_reason: str | None) -> str | None:
    """MCP's `stopReason` for a reply's `finish_reason`: "length" is `maxTokens`, a stop
    sequence is `stopSequence` where the provider reports it apart (OpenAI-compatible APIs
    report it as a plain "stop", which reads as `endTurn`), any other value is kept."""
    if finish_reason is None:
        return None
    return _STOP_REASONS.get(finish_reason, finish_reason)


class _Unsupported(PenguiFlowError):
    """A part of the request this client cannot pass to the model (audio, tool use)."""


def _messages(params: Any) -> list[LLMMessage]:
    messages: list[LLMMessage] = []
    if params.system_prompt:
        messages.append(LLMMessage(role="system", content=params.system_prompt))
    for message in params.messages:
        blocks = message.content if isinstance(message.content, list) else [message.content]
        texts: list[str] = []
        images: list[LLMImage] = []
        for block in blocks:
            kind = getattr(block, "type", None)
            if kind == "text":
                texts.append(block.text)
            elif kind == "image":
                images.append(LLMImage(data=block.data, media_type=block.mime_type))
            else:
                raise _Unsupported(
                    f"a {kind or type(block).__name__} part in a {message.role} message "
                    "(only text and image parts are passed to the model)"
                )
        if images and message.role != "user":
            raise _Unsupported(f"an image in a {message.role} message (only user messages)")
        messages.append(LLMMessage(role=message.role, content="\n".join(texts), images=images))
    return messages


def _stop_key(llm: Any) -> str:
    # Anthropic's Messages API names the option `stop_sequences`; OpenAI-compatible APIs
    # (llama.cpp, vLLM, ...) name it `stop`.
    return "stop_sequences" if "anthropic" in type(llm).__module__ else "stop"


def _with_options(llm: Any, params: Any) -> Any:
    """`llm`, or a shallow copy of it whose request options carry the server's `maxTokens`,
    `temperature` and `stopSequences`. The penguiflow LLM protocol has no per-request options;
    the HTTP adapters keep theirs in an `options` mapping, so a copy with its own mapping
    changes this request only (the copy shares the connection pool, which stays owned by
    `llm`). A client without that mapping gets the request as is."""
    wanted: dict[str, Any] = {"max_tokens": params.max_tokens}
    if params.temperature is not None:
        wanted["temperature"] = params.temperature
    if params.stop_sequences:
        wanted[_stop_key(llm)] = list(params.stop_sequences)
    options = getattr(llm, "options", None)
    if not isinstance(options, Mapping):
        logger.debug(
            "sampling: %s takes no request options; maxTokens/temperature/stopSequences of "
            "the server's request are not applied",
            type(llm).__name__,
        )
        return llm
    derived = copy.copy(llm)
    derived.options = {**options, **wanted}
    return derived


class SamplingAnswer:
    """The `sampling_callback` of a session: `llm` answers `sampling/createMessage`."""

    def __init__(self, llm: JSONLLMClient, server: str) -> None:
        self.llm = llm
        self.server = server

    async def __call__(self, context: Any, params: Any) -> Any:
        import mcp_types as types

        try:
            messages = _messages(params)
        except _Unsupported as exc:
            return self._error(types, f"the request has {exc}")
        client = _with_options(self.llm, params)
        try:
            response = await client.complete(messages=messages)
        except Exception as exc:
            logger.warning(
                "MCP server %r asked for a completion (sampling); the LLM call failed: %s",
                self.server,
                describe_exception(exc),
            )
            return self._error(
                types,
                f"the client's LLM call failed: {type(exc).__name__}: {describe_exception(exc)}",
            )
        model = response.model or getattr(self.llm, "model", None) or type(self.llm).__name__
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=response.text),
            model=str(model),
            stop_reason=stop_reason(response.finish_reason),
        )

    def _error(self, types: Any, why: str) -> Any:
        return types.ErrorData(
            code=types.INTERNAL_ERROR,
            message=f"sampling for MCP server {self.server!r} failed: {why}",
        )
