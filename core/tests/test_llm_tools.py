"""The provider-neutral tool-calling, image and embeddings models of `penguiflow.llm`."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from penguiflow.catalog import NodeSpec
from penguiflow.llm import (
    EmbeddingsResponse,
    LLMConfigurationError,
    LLMImage,
    LLMMessage,
    LLMReplyError,
    LLMResponse,
    LLMToolCall,
    normalize_messages,
    tool_definitions,
)


class Args(BaseModel):
    query: str


def test_tools_from_specs_schemas_and_openai_mappings() -> None:
    spec = NodeSpec(name="search", desc="Search the web", args_model=Args)
    json_spec = NodeSpec(
        name="fetch", desc="Fetch a URL", input_schema={"type": "object", "properties": {}}
    )
    openai_shape = {
        "type": "function",
        "function": {"name": "clock", "parameters": {"type": "object", "properties": {}}},
    }
    anthropic_shape = {"name": "ping", "input_schema": {"type": "object", "properties": {}}}
    tools = tool_definitions([spec, json_spec, openai_shape, anthropic_shape])
    assert [tool.name for tool in tools] == ["search", "fetch", "clock", "ping"]
    assert tools[0].parameters == Args.model_json_schema()
    assert tools[0].description == "Search the web"


def test_tool_mistakes_name_the_tool_and_the_fix() -> None:
    with pytest.raises(LLMConfigurationError, match=r"tools\[0\].*'a b'.*letters"):
        tool_definitions([{"name": "a b"}])
    with pytest.raises(LLMConfigurationError, match=r"object schema"):
        tool_definitions([{"name": "x", "parameters": {"type": "string"}}])
    with pytest.raises(LLMConfigurationError, match=r"more than one tool named \['x'\]"):
        tool_definitions([{"name": "x"}, {"name": "x"}])


def test_tool_call_arguments_from_json() -> None:
    assert LLMToolCall.from_json("c1", "t", "").arguments == {}
    assert LLMToolCall.from_json("c1", "t", '{"a": [1]}').arguments == {"a": [1]}
    with pytest.raises(LLMReplyError, match=r"tool 't' \(call 'c1'\).*JSON list"):
        LLMToolCall.from_json("c1", "t", "[1]")


def test_messages_carry_calls_and_images_only_where_they_belong() -> None:
    call = LLMToolCall(id="c1", name="search", arguments={"query": "x"})
    reply = LLMResponse(text="", tool_calls=[call], finish_reason="tool_calls")
    assert reply.assistant_message() == LLMMessage(role="assistant", content="", tool_calls=[call])
    with pytest.raises(ValueError, match=r"messages\[0\].*tool_calls belong on assistant"):
        normalize_messages([{"role": "user", "content": "", "tool_calls": [call]}])
    with pytest.raises(ValueError, match=r"images belong on user"):
        normalize_messages([{"role": "system", "content": "", "images": [{"url": "https://x"}]}])
    # Messages without the new fields are read as before.
    assert normalize_messages([{"role": "user", "content": "hi"}])[0].images == []


def test_images_from_urls_data_urls_and_data() -> None:
    assert LLMImage(url="https://x/p.png").data_url() == "https://x/p.png"
    inline = LLMImage(url="data:image/webp;base64,UklG")
    assert (inline.url, inline.data, inline.media_type) == (None, "UklG", "image/webp")
    assert inline.data_url() == "data:image/webp;base64,UklG"
    with pytest.raises(ValueError, match="media_type"):
        LLMImage(data="AAAA", media_type="image/tiff")
    with pytest.raises(ValueError, match="exactly one of url"):
        LLMImage(url="https://x", data="AAAA", media_type="image/png")


def test_embeddings_response_dimensions() -> None:
    assert EmbeddingsResponse(vectors=[[0.0, 1.0]]).dimensions == 2
    assert EmbeddingsResponse().dimensions is None
