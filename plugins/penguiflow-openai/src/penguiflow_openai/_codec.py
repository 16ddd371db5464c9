"""The Chat Completions wire format: requests, replies and stream events."""

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

from penguiflow.llm import (
    LLMHTTPError,
    LLMMessage,
    LLMStreamError,
    LLMTool,
    LLMToolCall,
    LLMUsage,
    ToolChoice,
)

from ._strict import strict_reply, strict_schema

__all__ = ["OpenAICodec", "chat_messages", "strict_compatible"]

#: Request options passed through to the body as given.
PASSTHROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
    "user",
)


def chat_messages(messages: list[LLMMessage], instructions: str | None) -> list[dict[str, Any]]:
    """Messages as Chat Completions wants them.

    An assistant message's `tool_calls` and the `tool` messages answering them (by
    `tool_call_id`) are sent natively. Any other `tool` message becomes a user message
    naming the call: the API refuses tool results that answer no call. Images go before
    the text of their user message, as `image_url` parts."""
    called = {call.id for message in messages for call in message.tool_calls}
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            if message.tool_call_id in called:
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": message.tool_call_id,
                        "content": message.content,
                    }
                )
                continue
            label = message.name or message.tool_call_id or "tool"
            out.append({"role": "user", "content": f"[result of {label}]\n{message.content}"})
            continue
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.images:
            item["content"] = [*map(_image_part, message.images), _text(message.content)]
        if message.tool_calls:
            # OpenAI takes null content beside tool calls, and some compatible servers
            # refuse an empty string there.
            item["content"] = message.content or None
            item["tool_calls"] = [_wire_call(call) for call in message.tool_calls]
        if message.name:
            item["name"] = message.name
        out.append(item)
    if instructions:
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{instructions}"}
        else:
            out.insert(0, {"role": "system", "content": instructions})
    return out


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image_part(image: Any) -> dict[str, Any]:
    part: dict[str, Any] = {"url": image.data_url()}
    if image.detail:
        part["detail"] = image.detail
    return {"type": "image_url", "image_url": part}


def _wire_call(call: LLMToolCall) -> dict[str, Any]:
    arguments = json.dumps(call.arguments)
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _wire_tool(tool: LLMTool) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


def _wire_choice(choice: ToolChoice) -> Any:
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def strict_compatible(schema: Mapping[str, Any]) -> bool:
    """Whether OpenAI's strict mode accepts `schema` as it is: every object lists all its
    properties as required and allows no others. Pydantic models with defaults do not."""
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", ())) != set(properties):
            return False
    children: list[Any] = []
    for key in ("properties", "$defs", "definitions"):
        children += list(schema.get(key, {}).values())
    for key in ("items", "anyOf", "oneOf", "allOf"):
        value = schema.get(key)
        children += value if isinstance(value, list) else [value] if value else []
    return all(strict_compatible(child) for child in children if isinstance(child, Mapping))


class OpenAICodec:
    name = "OpenAI-compatible"
    supports_tools = True
    supports_images = True

    def __init__(self, *, path: str = "/chat/completions", stream_usage: bool = True) -> None:
        self.path = path
        self.stream_usage = stream_usage

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
        instructions = None
        if schema is not None and mode in ("json_object", "prompt"):
            instructions = schema_instructions(schema)
        body: dict[str, Any] = {"model": model, "messages": chat_messages(messages, instructions)}
        if schema is not None and mode == "json_schema":
            # Strict when the schema is, or can be rewritten to be (map_reply undoes the
            # rewrite); otherwise as given, unenforced, like the openai SDK would.
            strict = schema if strict_compatible(schema) else strict_schema(schema)
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name,
                    "schema": strict if strict is not None else schema,
                    "strict": strict is not None,
                },
            }
        elif schema is not None and mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        if tools:
            body["tools"] = [_wire_tool(tool) for tool in tools]
            if tool_choice is not None:
                body["tool_choice"] = _wire_choice(tool_choice)
        for key in PASSTHROUGH:
            if key in options:
                body[key] = options[key]
        body.update(options.get("extra_body", {}))
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return ProviderRequest(self.path, body, native_tools=bool(tools))

    def parse_reply(self, body: Any) -> ProviderReply:
        choice = body["choices"][0]
        message = choice["message"]
        content = message.get("content")
        if content is None:
            refusal = message.get("refusal")
            if refusal:
                raise LLMHTTPError(
                    f"the model refused: {refusal}", status=200, body=json.dumps(message)[:500]
                )
            content = ""
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        return ProviderReply(
            text=str(content),
            reasoning=str(reasoning) if reasoning else None,
            usage=_usage(body.get("usage")),
            model=body.get("model"),
            finish_reason=choice.get("finish_reason"),
            tool_calls=tuple(_read_call(raw) for raw in message.get("tool_calls") or ()),
        )

    def map_reply(self, text: str, *, mode: SchemaMode, schema: dict[str, Any]) -> str:
        """Undo the strict rewrite `build_request` made of `schema`, if it made one."""
        if mode != "json_schema" or strict_compatible(schema) or strict_schema(schema) is None:
            return text
        return strict_reply(text, schema)

    def parse_event(self, event: SSEEvent) -> StreamDelta | None:
        if event.data.strip() == "[DONE]":
            return StreamDelta(done=True)
        data = json.loads(event.data)
        if "error" in data:
            error = data["error"]
            detail = error.get("message") if isinstance(error, dict) else error
            raise LLMStreamError(f"the provider reported an error mid-stream: {detail}")
        choices = data.get("choices") or []
        delta = choices[0].get("delta", {}) if choices else {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        return StreamDelta(
            text=delta.get("content") or "",
            reasoning=str(reasoning),
            usage=_usage(data.get("usage")),
            model=data.get("model"),
            finish_reason=choices[0].get("finish_reason") if choices else None,
            tool_calls=tuple(_read_call_delta(raw) for raw in delta.get("tool_calls") or ()),
        )

    def rejects_mode(self, error: LLMHTTPError, mode: SchemaMode) -> bool:
        return is_mode_refusal(error, mode)


def _read_call(raw: Mapping[str, Any]) -> LLMToolCall:
    function = raw["function"]
    arguments = function.get("arguments")
    if isinstance(arguments, Mapping):  # a few compatible servers send an object
        return LLMToolCall(id=str(raw["id"]), name=function["name"], arguments=dict(arguments))
    return LLMToolCall.from_json(str(raw["id"]), function["name"], arguments or "")


def _read_call_delta(raw: Mapping[str, Any]) -> ToolCallDelta:
    function = raw.get("function") or {}
    arguments = function.get("arguments") or ""
    return ToolCallDelta(
        index=int(raw.get("index", 0)),
        id=raw.get("id"),
        name=function.get("name"),
        arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
    )


def _usage(raw: Any) -> LLMUsage | None:
    """`prompt_tokens` already includes the cached ones; the cached part is reported in
    `prompt_tokens_details.cached_tokens` (OpenAI, and servers copying it)."""
    if not isinstance(raw, Mapping):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return LLMUsage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cache_read_input_tokens=int(cached or 0),
    )
