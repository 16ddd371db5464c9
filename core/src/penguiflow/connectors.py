"""Connectors: objects that contribute callable tools to the catalogue (MCP, UTCP, ...).

A connector has a `name` and two async methods. Its tools are exposed under namespaced names,
`<connector>.<tool>`, so two servers that both offer `search` do not collide. A call answers a
`ToolResult`, whatever the tool returned: text, structured content, references to content kept
out of the prompt, and links to resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from .errors import PenguiFlowError

__all__ = [
    "Connector",
    "ConnectorTool",
    "ToolContentRef",
    "ToolNameCollisionError",
    "ToolResourceLink",
    "ToolResult",
    "namespaced_tools",
    "tool_result_schema",
]


def _without_empty(
    handler: SerializerFunctionWrapHandler, model: BaseModel, *, emptiable: tuple[str, ...] = ()
) -> Any:
    """`model`'s fields without the unset ones (None, and "" or () for the `emptiable`
    fields): the planner shows a result's JSON to its model, and empty fields would only cost
    tokens. Validation fills them back with their defaults, so a dump reads back equal.
    (`structured` is not emptiable: an empty list is a value the tool returned.)"""
    dumped = handler(model)
    return {
        key: value
        for key, value in dumped.items()
        if value is not None and not (key in emptiable and not value)
    }


class ToolContentRef(BaseModel):
    """Content of a tool's result kept out of the prompt (binary data, images, audio,
    embedded resources, text or structured content longer than the connector inlines).

    `ref` is what the connector's `artifact(ref)` takes to return the content. `preview`
    is the start of text content only: binary data, encoded or not, never reaches a prompt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: str
    mime_type: str
    #: the content's size in bytes (text counts its UTF-8 encoding)
    size: int
    uri: str | None = None
    name: str | None = None
    preview: str | None = None

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_empty(handler, self)


class ToolResourceLink(BaseModel):
    """A resource the tool pointed to without sending it (MCP's `resource_link`); the
    connector's `read_resource(uri)` fetches it when it is needed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str
    name: str | None = None
    mime_type: str | None = None
    description: str | None = None
    #: the resource's size in bytes, when the server says
    size: int | None = None

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_empty(handler, self)


class ToolResult(BaseModel):
    """What a connector's tool call answers: one shape whatever the tool returned.

    - `text`: the text the tool returned, its blocks joined by a blank line ("" when none);
    - `structured`: the structured content (JSON) when the tool returned some, else None;
    - `references`: content kept out of the prompt, fetched with `connector.artifact(ref)`;
    - `links`: resources the tool pointed to, fetched with `connector.read_resource(uri)`.

    Its JSON (`model_dump(mode="json")`, what a planner shows its model) leaves out empty
    fields: a tool that returned one sentence is `{"text": "..."}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = ""
    structured: Any | None = None
    references: tuple[ToolContentRef, ...] = ()
    links: tuple[ToolResourceLink, ...] = ()

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_empty(handler, self, emptiable=("text", "references", "links"))


# The items are described in words, not as schemas: the result schema is repeated for every
# tool in a planner's prompt, and the model needs to know what it will see, not validate it.
_REFERENCES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object"},
    "description": "content kept out of the prompt: {ref, mime_type, size, uri?, name?, "
    "preview? (text only)}",
}
_LINKS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object"},
    "description": "resources pointed to, not fetched: {uri, name?, mime_type?, "
    "description?, size?}",
}


def tool_result_schema(structured: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON schema of a `ToolResult`'s JSON, with `structured` described by the tool's
    own output schema when it declares one.

    Written by hand rather than taken from Pydantic: it is shown in a planner's prompt for
    every tool, so it stays short (about 500 characters besides the tool's own schema), has
    no `$ref`s of its own, and describes the JSON as dumped (empty fields left out, hence
    nothing required). `$defs`/`definitions` of the
    tool's schema are moved to the top, where its `#/$defs/...` references point."""
    structured_schema: dict[str, Any] = {"description": "structured content, when any"}
    hoisted: dict[str, Any] = {}
    if structured is not None:
        structured_schema = dict(structured)
        for key in ("$defs", "definitions"):
            if key in structured_schema:
                hoisted[key] = structured_schema.pop(key)
        # A schema's own `$schema`/`$id` belong to a document's root, not to a property.
        structured_schema.pop("$schema", None)
        structured_schema.pop("$id", None)
    return {
        "type": "object",
        "description": "empty fields are left out",
        "properties": {
            "text": {"type": "string"},
            "structured": structured_schema,
            "references": dict(_REFERENCES_SCHEMA),
            "links": dict(_LINKS_SCHEMA),
        },
        **hoisted,
    }


class ToolNameCollisionError(PenguiFlowError, ValueError):
    """Two contributions share one name; the message names both sides and how to fix it."""


@runtime_checkable
class Connector(Protocol):
    """A source of tools. `list_tools()` returns objects with a `name` (tool specs);
    `call_tool` answers a `ToolResult` for every tool, whatever it returned."""

    name: str

    async def list_tools(self) -> Sequence[Any]: ...

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> ToolResult: ...


@dataclass(frozen=True, slots=True)
class ConnectorTool:
    """One tool of one connector, under its namespaced name."""

    qualified_name: str
    connector: Connector
    tool: Any

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return await self.connector.call_tool(self.tool.name, arguments)


async def namespaced_tools(connectors: Iterable[Connector]) -> dict[str, ConnectorTool]:
    """Every tool of every connector, keyed `connector.tool`.

    Raises `ToolNameCollisionError` when two connectors share a name, or one connector lists
    the same tool twice."""
    seen_connectors: dict[str, Connector] = {}
    tools: dict[str, ConnectorTool] = {}
    for connector in connectors:
        other = seen_connectors.get(connector.name)
        if other is not None:
            raise ToolNameCollisionError(
                f"two connectors are named {connector.name!r} ({other!r} and {connector!r}); "
                "their tools would collide as "
                f"'{connector.name}.<tool>': give one of them another name"
            )
        seen_connectors[connector.name] = connector
        for tool in await connector.list_tools():
            qualified = f"{connector.name}.{tool.name}"
            if qualified in tools:
                raise ToolNameCollisionError(
                    f"connector {connector.name!r} lists tool {tool.name!r} twice; "
                    "tool names must be unique within a connector"
                )
            tools[qualified] = ConnectorTool(qualified, connector, tool)
    return tools
