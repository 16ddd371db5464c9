"""The JSON LLM client protocol: the only way the planner talks to a model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ._models import LLMMessage, LLMResponse, ResponseFormat, StreamCallback
from ._tools import ToolChoice, ToolLike

__all__ = ["JSONLLMClient", "ToolCallingLLMClient"]


@runtime_checkable
class JSONLLMClient(Protocol):
    """One async method. With `response_format` the reply text is JSON matching it; with
    `stream=True` pieces of the text go to `on_stream_chunk` as they arrive, and the full text
    is still returned."""

    async def complete(
        self,
        *,
        messages: Sequence[LLMMessage | Mapping[str, Any]],
        response_format: ResponseFormat = None,
        stream: bool = False,
        on_stream_chunk: StreamCallback | None = None,
    ) -> LLMResponse: ...


@runtime_checkable
class ToolCallingLLMClient(Protocol):
    """A `JSONLLMClient` that also offers the model native tools: `tools` (`LLMTool`s,
    `NodeSpec`s or JSON tool mappings) go in the request, and the calls the model asks for
    come back on `LLMResponse.tool_calls` (streamed calls are put together first).
    `tool_choice` is "auto" (the default), "required", "none" or one tool's name."""

    async def complete(
        self,
        *,
        messages: Sequence[LLMMessage | Mapping[str, Any]],
        response_format: ResponseFormat = None,
        stream: bool = False,
        on_stream_chunk: StreamCallback | None = None,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> LLMResponse: ...
