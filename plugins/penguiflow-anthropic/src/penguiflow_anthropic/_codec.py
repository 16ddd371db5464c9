"""The Anthropic Messages wire format: requests, replies and stream events.

Structured-output modes map to: `json_schema`, a tool whose input schema is the response
schema, which the model is made to call (its input is the reply); `json_object`, the schema in
the system prompt and the assistant turn started with `{`; `prompt`, the schema in the
system prompt only. When the caller offers its own tools, `json_schema` puts the schema in the
system prompt instead of forcing a tool, so the model stays free to call the caller's tools.

Native tools map to `tools` (`input_schema`), assistant tool calls to `tool_use` blocks and
their results to `tool_result` blocks in the next user turn; images to `image` blocks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from penguiflow_llm_http import (
    ProviderReply,
    ProviderRequest,
    SchemaMode,
    SSEEvent,
    StreamDelta,
    ToolCallDelta,
    is_mode_refusal,
    schema_instructions,
)

from penguiflow.errors import ConfigurationError
from penguiflow.llm import (
    LLMHTTPError,
    LLMImage,
    LLMMessage,
    LLMStreamError,
    LLMTool,
    LLMToolCall,
    LLMUsage,
    ToolChoice,
)

__all__ = ["AnthropicCodec", "messages_payload"]

#: Anthropic's `stop_reason`s in `LLMResponse.finish_reason`'s vocabulary; others are kept.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: Anthropic's wording when it refuses the forced tool or the prefill (with extended
#: thinking: "Thinking may not be enabled when tool_choice forces tool use.", or "... a final
#: `assistant` message must start with a thinking block ...").
_REFUSAL_WORDS = ("tool_choice", "tool use", "input_schema", "prefill", "thinking")

PASSTHROUGH = ("temperature", "top_p", "top_k", "stop_sequences", "thinking", "metadata")
_PREFILL = "{"


def messages_payload(
    messages: list[LLMMessage], instructions: str | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """`(system, messages)` as the Messages API wants them: system text apart, user and
    assistant turns alternating (neighbours with one role are joined), assistant tool calls
    as `tool_use` blocks and the `tool` messages answering them as `tool_result` blocks of a
    user turn; other `tool` messages become user text naming the call. A turn of text only
    is sent as one string, as before blocks were needed."""
    called = {call.id for message in messages for call in message.tool_calls}
    system_parts: list[str] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        if message.role == "system":
            system_parts.append(message.content)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message, called)
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    if instructions:
        system_parts.append(instructions)
    payload = [{"role": role, "content": _content(blocks)} for role, blocks in turns]
    if not payload or payload[0]["role"] != "user":
        payload.insert(0, {"role": "user", "content": "(conversation start)"})
    return ("\n\n".join(system_parts) or None), payload


def _blocks(message: LLMMessage, called: set[str]) -> list[dict[str, Any]]:
    if message.role == "tool" and message.tool_call_id in called:
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
        ]
    content = message.content
    if message.role == "tool":
        label = message.name or message.tool_call_id or "tool"
        content = f"[result of {label}]\n{content}"
    # Images first: Anthropic advises putting them before the text about them.
    blocks = [_image_block(image) for image in message.images]
    if content or not (message.images or message.tool_calls):
        blocks.append({"type": "text", "text": content})
    blocks += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    ]
    return blocks


def _content(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(block["type"] == "text" for block in blocks):
        return "\n\n".join(block["text"] for block in blocks)
    return blocks


def _image_block(image: LLMImage) -> dict[str, Any]:
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    source = {"type": "base64", "media_type": image.media_type, "data": image.data}
    return {"type": "image", "source": source}


def _wire_choice(choice: ToolChoice) -> dict[str, Any]:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


class AnthropicCodec:
    name = "Anthropic"
    supports_tools = True
    supports_images = True

    def __init__(self, *, max_tokens: int = 4096) -> None:
        if max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be >= 1, got {max_tokens}")
        self.max_tokens = max_tokens

    def build_request(
        self,
        *,
        model: str,
        messages: list[LLMMessage],
        mode: SchemaMode | None,
        schema: dict[str, Any] | None,
        schema_name: str,
        stream: bool,
        options: Mapping[str, Any],
        tools: list[LLMTool] | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> ProviderRequest:
        if tools and mode in ("json_schema", "json_object"):
            # A forced reply tool would keep the model from calling the caller's tools, and a
            # prefilled `{` from starting a tool call: the schema goes in the prompt.
            mode = "prompt"
        instructions = None
        if schema is not None and mode in ("json_object", "prompt"):
            instructions = schema_instructions(schema)
        system, turns = messages_payload(messages, instructions)
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": int(options.get("max_tokens", self.max_tokens)),
            "messages": turns,
        }
        if system:
            body["system"] = system
        if schema is not None and mode == "json_schema":
            body["tools"] = [
                {
                    "name": schema_name,
                    "description": "Give your reply by calling this tool; its input is the reply.",
                    "input_schema": schema,
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": schema_name}
        elif schema is not None and mode == "json_object":
            body["messages"] = [*turns, {"role": "assistant", "content": _PREFILL}]
        if tools:
            body["tools"] = [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                }
                for tool in tools
            ]
            if tool_choice is not None:
                body["tool_choice"] = _wire_choice(tool_choice)
        for key in PASSTHROUGH:
            if key in options:
                body[key] = options[key]
        body.update(options.get("extra_body", {}))
        if stream:
            body["stream"] = True
        prefill = _PREFILL if schema is not None and mode == "json_object" else ""
        return ProviderRequest("/v1/messages", body, reply_prefix=prefill, native_tools=bool(tools))

    def parse_reply(self, body: Any) -> ProviderReply:
        if body.get("type") == "error":
            raise ConfigurationError(body.get("error"))
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[LLMToolCall] = []
        for block in body["content"]:
            kind = block.get("type")
            if kind == "text":
                text.append(block["text"])
            elif kind == "tool_use":
                # The caller's tool, or (without native tools) the forced reply tool, whose
                # input the client turns back into the reply text.
                calls.append(
                    LLMToolCall(id=block["id"], name=block["name"], arguments=block["input"])
                )
            elif kind == "thinking":
                reasoning.append(block.get("thinking", ""))
        return ProviderReply(
            text="".join(text),
            reasoning="".join(reasoning) or None,
            usage=_usage(body.get("usage")),
            model=body.get("model"),
            finish_reason=_finish(body.get("stop_reason")),
            tool_calls=tuple(calls),
        )

    def parse_event(self, event: SSEEvent) -> StreamDelta | None:
        if event.event == "ping" or not event.data:
            return None
        data = json.loads(event.data)
        kind = data.get("type", event.event)
        if kind == "error":
            error = data.get("error") or {}
            raise LLMStreamError(
                f"Anthropic reported an error mid-stream: {error.get('type')}: "
                f"{error.get('message')}"
            )
        if kind == "message_start":
            message = data["message"]
            return StreamDelta(usage=_usage(message.get("usage")), model=message.get("model"))
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "text" and block.get("text"):
                return StreamDelta(text=block["text"])
            if block.get("type") == "tool_use":
                start = ToolCallDelta(index=int(data["index"]), id=block["id"], name=block["name"])
                return StreamDelta(tool_calls=(start,))
            return None
        if kind == "content_block_delta":
            delta = data["delta"]
            delta_type = delta.get("type")
            if delta_type == "text_delta":
                return StreamDelta(text=delta["text"])
            if delta_type == "input_json_delta":
                piece = ToolCallDelta(
                    index=int(data["index"]), arguments=delta.get("partial_json", "")
                )
                return StreamDelta(tool_calls=(piece,))
            if delta_type == "thinking_delta":
                return StreamDelta(reasoning=delta.get("thinking", ""))
            return None
        if kind == "message_delta":
            stop = (data.get("delta") or {}).get("stop_reason")
            return StreamDelta(usage=_usage(data.get("usage")), finish_reason=_finish(stop))
        if kind == "message_stop":
            return StreamDelta(done=True)
        return None

    def rejects_mode(self, error: LLMHTTPError, mode: SchemaMode) -> bool:
        return is_mode_refusal(error, mode, extra_words=_REFUSAL_WORDS)


def _finish(stop_reason: Any) -> str | None:
    if not isinstance(stop_reason, str):
        return None
    return _FINISH.get(stop_reason, stop_reason)


def _usage(raw: Any) -> LLMUsage | None:
    """Anthropic's `input_tokens` leaves out the tokens read from and written to the prompt
    cache; they are added in, so `input_tokens` is the whole prompt as for every provider."""
    if not isinstance(raw, Mapping):
        return None
    read = int(raw.get("cache_read_input_tokens") or 0)
    written = int(raw.get("cache_creation_input_tokens") or 0)
    return LLMUsage(
        input_tokens=int(raw.get("input_tokens") or 0) + read + written,
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_input_tokens=read,
        cache_creation_input_tokens=written,
    )
