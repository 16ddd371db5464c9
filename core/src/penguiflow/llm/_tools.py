"""Native tool calling and image input, in one vocabulary for every provider.

A request may offer the model tools (`LLMTool`, built from a `NodeSpec`, a JSON schema or a
mapping); the reply may ask for calls (`LLMToolCall` on `LLMResponse.tool_calls`), which go
back into the conversation on an assistant message, each answered by a `tool` message with
the call's id. A user message may carry images (`LLMImage`: a URL, or base64 data with its
MIME type). Adapters map these onto their own API's shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import BaseModel, Field, ValidationError, model_validator

from ._errors import LLMConfigurationError, LLMReplyError

if TYPE_CHECKING:
    from ..catalog import NodeSpec

__all__ = [
    "IMAGE_MEDIA_TYPES",
    "LLMImage",
    "LLMTool",
    "LLMToolCall",
    "ToolChoice",
    "ToolLike",
    "tool_definitions",
]

#: `auto` (the model decides), `required` (it must call one), `none`, or one tool's name.
ToolChoice: TypeAlias = "Literal['auto', 'required', 'none'] | str"

#: What `tools=` accepts: an `LLMTool`, a catalog `NodeSpec`, or a mapping, either
#: `{"name", "description", "parameters"}` or OpenAI's `{"type": "function", "function": {...}}`.
ToolLike: TypeAlias = "LLMTool | NodeSpec | Mapping[str, Any]"

#: The image types both OpenAI and Anthropic accept as base64 data.
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

# Both providers refuse other tool names, with an error that does not say which tool.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class LLMTool(BaseModel):
    """A tool offered to the model: its name, what it does, and its arguments' JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @model_validator(mode="after")
    def _check(self) -> LLMTool:
        if not _TOOL_NAME.match(self.name):
            raise LLMConfigurationError(
                f"tool name {self.name!r} is not accepted by LLM providers: use 1-64 letters, "
                "digits, '_' or '-'"
            )
        if self.parameters.get("type", "object") != "object":
            raise LLMConfigurationError(
                f"tool {self.name!r}: parameters must be an object schema (type 'object'), got "
                f"type {self.parameters.get('type')!r}; wrap the value in an object property"
            )
        return self

    @classmethod
    def from_spec(cls, spec: NodeSpec) -> LLMTool:
        """The tool a catalog entry describes (its `args_schema`, from model or JSON)."""
        return cls(name=spec.name, description=spec.desc, parameters=spec.args_schema)


class LLMToolCall(BaseModel):
    """One call the model asked for; `id` is what the answering `tool` message names."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_json(cls, id: str, name: str, arguments: str) -> LLMToolCall:
        """A call whose arguments came as JSON text (OpenAI's wire format, or streamed
        pieces put together). Empty text means no arguments; anything that is not a JSON
        object raises `LLMReplyError` naming the tool, since the call cannot be made."""
        if not arguments.strip():
            return cls(id=id, name=name)
        try:
            parsed = json.loads(arguments)
        except ValueError as exc:
            parsed, problem = None, f"invalid JSON ({exc})"
        else:
            problem = "" if isinstance(parsed, dict) else f"a JSON {type(parsed).__name__}"
        if problem or not isinstance(parsed, dict):
            raise LLMReplyError(
                f"the model called tool {name!r} (call {id!r}) with arguments that are not a "
                f"JSON object: {problem}; the call cannot be made. Retry the request, or use a "
                "model that follows tool schemas better",
                text=arguments,
                errors=[f"{name}: arguments are {problem}"],
            )
        return cls(id=id, name=name, arguments=parsed)


class LLMImage(BaseModel):
    """An image in a user message: `url` (https or a `data:` URL), or `data` (base64) with
    its `media_type`. `detail` ("low", "high", "auto") is passed to APIs that take it."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: Literal["low", "high", "auto"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_data_url(cls, values: Any) -> Any:
        # A `data:` URL becomes data and media_type, so each adapter sees one shape for
        # inline images (Anthropic takes no data URLs).
        url = values.get("url") if isinstance(values, Mapping) else None
        if isinstance(url, str) and url.startswith("data:"):
            header, _, payload = url[5:].partition(",")
            media_type, _, encoding = header.partition(";")
            if encoding != "base64" or not payload:
                raise LLMConfigurationError(
                    "a data: image URL must be 'data:<media type>;base64,<data>'"
                )
            return {**values, "url": None, "data": payload, "media_type": media_type}
        return values

    @model_validator(mode="after")
    def _check(self) -> LLMImage:
        if (self.url is None) == (self.data is None):
            raise LLMConfigurationError(
                "an image needs exactly one of url=... or data=... (base64)"
            )
        if self.data is not None and self.media_type not in IMAGE_MEDIA_TYPES:
            raise LLMConfigurationError(
                f"image data needs media_type, one of {', '.join(IMAGE_MEDIA_TYPES)}; got "
                f"{self.media_type!r}"
            )
        return self

    def data_url(self) -> str:
        """The image as one URL (OpenAI's `image_url` takes either kind)."""
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data}"


def tool_definitions(tools: Iterable[ToolLike]) -> list[LLMTool]:
    """`tools` as `LLMTool`s, checked: each a known shape with a usable name, no name twice."""
    found: list[LLMTool] = []
    for index, tool in enumerate(tools):
        try:
            found.append(_definition(tool))
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise LLMConfigurationError(f"tools[{index}] is not a usable tool: {problem}") from None
        except ValueError as exc:
            raise LLMConfigurationError(f"tools[{index}] is not a usable tool: {exc}") from None
    names = [tool.name for tool in found]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LLMConfigurationError(f"tools has more than one tool named {repeated}: rename them")
    return found


def _definition(tool: Any) -> LLMTool:
    if isinstance(tool, LLMTool):
        return tool
    if isinstance(tool, Mapping):
        if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
            tool = tool["function"]
        schema = tool.get("parameters", tool.get("input_schema"))
        return LLMTool(
            name=str(tool.get("name", "")),
            description=str(tool.get("description") or ""),
            **({"parameters": dict(schema)} if schema is not None else {}),
        )
    if hasattr(tool, "args_schema") and hasattr(tool, "name"):  # a catalog NodeSpec
        return LLMTool.from_spec(tool)
    raise LLMConfigurationError(
        f"got {type(tool).__name__}; pass an LLMTool, a NodeSpec or a mapping with name, "
        "description and parameters"
    )
