"""The tool catalog: typed descriptions of what a planner may call.

A `NodeSpec` describes one tool: its name, a description, input and output Pydantic models
(and their JSON schemas), how it affects the world (`side_effects`), tags, examples and
hints. Nodes become specs with `@tool(...)` metadata and `build_catalog(nodes, registry)`;
connectors (MCP, UTCP) build specs from the JSON schemas their servers publish, with
`NodeSpec.from_schema(...)`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, TypeAlias, TypeVar, get_args

from pydantic import BaseModel, Field, ValidationError

from .errors import ConfigurationError, UnknownNameError
from .node import Node
from .registry import ModelRegistry

__all__ = [
    "NodeSpec",
    "SideEffect",
    "ToolInputExample",
    "ToolLoadingMode",
    "ToolMetadata",
    "argument_errors",
    "build_catalog",
    "tool",
    "tool_metadata",
]

SideEffect: TypeAlias = Literal["pure", "read", "write", "external", "stateful"]
_SIDE_EFFECTS = get_args(SideEffect)
_METADATA_ATTRIBUTE = "__penguiflow_tool__"

F = TypeVar("F", bound=Callable[..., Any])


class ToolLoadingMode(str, Enum):
    """Whether a tool is always in the planner's prompt, or found on demand by tool search."""

    ALWAYS = "always"
    DEFERRED = "deferred"


class ToolInputExample(BaseModel):
    """Example arguments for a tool, shown to the model."""

    args: dict[str, Any]
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ToolMetadata:
    """What `@tool(...)` records on a node function."""

    desc: str | None = None
    side_effects: SideEffect = "pure"
    tags: tuple[str, ...] = ()
    auth_scopes: tuple[str, ...] = ()
    cost_hint: str | None = None
    latency_hint_ms: int | None = None
    safety_notes: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[ToolInputExample, ...] = ()
    loading_mode: ToolLoadingMode = ToolLoadingMode.ALWAYS


def _check_side_effects(value: str, where: str) -> SideEffect:
    if value not in _SIDE_EFFECTS:
        raise ConfigurationError(
            f"{where}: side_effects must be one of {', '.join(_SIDE_EFFECTS)}, got {value!r}"
        )
    return value  # type: ignore[return-value]


def _examples(
    examples: Sequence[ToolInputExample | Mapping[str, Any]] | None,
) -> tuple[ToolInputExample, ...]:
    return tuple(
        e if isinstance(e, ToolInputExample) else ToolInputExample.model_validate(e)
        for e in examples or ()
    )


def tool(
    *,
    desc: str | None = None,
    side_effects: SideEffect = "pure",
    tags: Sequence[str] | None = None,
    auth_scopes: Sequence[str] | None = None,
    cost_hint: str | None = None,
    latency_hint_ms: int | None = None,
    safety_notes: str | None = None,
    extra: Mapping[str, Any] | None = None,
    examples: Sequence[ToolInputExample | Mapping[str, Any]] | None = None,
    loading_mode: ToolLoadingMode | str = ToolLoadingMode.ALWAYS,
) -> Callable[[F], F]:
    """Describe a node function as a tool; the function itself is returned unchanged."""

    def decorate(func: F) -> F:
        name = getattr(func, "__name__", repr(func))
        metadata = ToolMetadata(
            desc=desc,
            side_effects=_check_side_effects(side_effects, f"@tool on {name}"),
            tags=tuple(tags or ()),
            auth_scopes=tuple(auth_scopes or ()),
            cost_hint=cost_hint,
            latency_hint_ms=latency_hint_ms,
            safety_notes=safety_notes,
            extra=dict(extra or {}),
            examples=_examples(examples),
            loading_mode=ToolLoadingMode(loading_mode),
        )
        setattr(func, _METADATA_ATTRIBUTE, metadata)
        return func

    return decorate


def argument_errors(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """What is wrong with `arguments` for a tool whose input is described by the JSON
    `schema`, one `path: message` each (empty when they fit). Checks the subset of JSON
    Schema that `penguiflow.llm.validate_reply` checks."""
    from .llm import validate_reply

    _, errors = validate_reply(json.dumps(dict(arguments), default=str), schema)
    return [_relative(error) for error in errors]


def _relative(error: str) -> str:
    if error.startswith("$."):
        return error[2:]
    if error.startswith("$:"):
        return "(arguments)" + error[1:]
    return error


def tool_metadata(func: Callable[..., Any]) -> ToolMetadata | None:
    """The `@tool` metadata of a function, if it has any."""
    found = getattr(func, _METADATA_ATTRIBUTE, None)
    return found if isinstance(found, ToolMetadata) else None


#: How a spec that is not a node is called (a connector's tool): arguments in, result out.
ToolCall: TypeAlias = Callable[[Mapping[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One tool of the catalog."""

    name: str
    desc: str
    args_model: type[BaseModel] | None = None
    out_model: type[BaseModel] | None = None
    node: Node | None = None
    side_effects: SideEffect = "pure"
    tags: tuple[str, ...] = ()
    auth_scopes: tuple[str, ...] = ()
    cost_hint: str | None = None
    latency_hint_ms: int | None = None
    safety_notes: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[ToolInputExample, ...] = ()
    loading_mode: ToolLoadingMode = ToolLoadingMode.ALWAYS
    #: a schema given as JSON (a connector's tool) instead of a model
    input_schema: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None
    #: how to call a tool that is not a node
    call: ToolCall | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("a tool spec needs a name")
        if self.args_model is None and self.input_schema is None:
            raise ConfigurationError(
                f"tool {self.name!r} needs args_model (a Pydantic model) or input_schema (JSON)"
            )
        _check_side_effects(self.side_effects, f"tool {self.name!r}")

    @property
    def args_schema(self) -> dict[str, Any]:
        if self.args_model is not None:
            return self.args_model.model_json_schema()
        return dict(self.input_schema or {})

    @property
    def out_schema(self) -> dict[str, Any] | None:
        if self.out_model is not None:
            return self.out_model.model_json_schema()
        return dict(self.output_schema) if self.output_schema is not None else None

    def argument_errors(self, arguments: Mapping[str, Any]) -> list[str]:
        """What is wrong with `arguments` for this tool (`path: message` each), checked by
        its input model or else its JSON schema; empty when they fit."""
        if self.args_model is None:
            return argument_errors(self.args_schema, arguments)
        try:
            self.args_model.model_validate(dict(arguments))
        except ValidationError as exc:
            return [
                f"{'.'.join(str(p) for p in error['loc']) or '(arguments)'}: {error['msg']}"
                for error in exc.errors(
                    include_url=False, include_context=False, include_input=False
                )
            ]
        return []

    def to_tool_record(self) -> dict[str, Any]:
        """The JSON-ready description a planner puts in its prompt."""
        record: dict[str, Any] = {
            "name": self.name,
            "desc": self.desc,
            "side_effects": self.side_effects,
            "args_schema": self.args_schema,
        }
        if self.out_schema is not None:
            record["out_schema"] = self.out_schema
        optional: dict[str, Any] = {
            "tags": list(self.tags),
            "auth_scopes": list(self.auth_scopes),
            "cost_hint": self.cost_hint,
            "latency_hint_ms": self.latency_hint_ms,
            "safety_notes": self.safety_notes,
            "extra": dict(self.extra),
            "examples": [e.model_dump(exclude_none=True) for e in self.examples],
        }
        record.update({key: value for key, value in optional.items() if value})
        return record

    @classmethod
    def from_schema(
        cls,
        name: str,
        *,
        desc: str,
        input_schema: Mapping[str, Any],
        call: ToolCall,
        output_schema: Mapping[str, Any] | None = None,
        side_effects: SideEffect = "external",
        tags: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> NodeSpec:
        """A spec for a tool described by JSON schemas (e.g. a connector's tool)."""
        return cls(
            name=name,
            desc=desc,
            input_schema=dict(input_schema),
            output_schema=dict(output_schema) if output_schema is not None else None,
            call=call,
            side_effects=side_effects,
            tags=tuple(tags),
            extra=dict(extra or {}),
        )


def build_catalog(nodes: Sequence[Node], registry: ModelRegistry) -> list[NodeSpec]:
    """A spec per node: models from `registry`, the rest from `@tool` metadata (the
    description falls back to the function's docstring). A node missing from the registry,
    or two nodes with one name, is an error naming it."""
    specs: list[NodeSpec] = []
    seen: set[str] = set()
    for node in nodes:
        name = str(node.name)
        if name in seen:
            raise ConfigurationError(f"two nodes are named {name!r}; tool names must be unique")
        seen.add(name)
        if not registry.has(name):
            raise UnknownNameError(
                f"node {name!r} has no models in the registry; register them with "
                f"registry.register({name!r}, InputModel, OutputModel)"
            )
        args_model, out_model = registry.models(name)
        metadata = tool_metadata(node.func) or ToolMetadata()
        desc = metadata.desc or inspect.getdoc(node.func) or ""
        if not desc:
            raise ConfigurationError(
                f"node {name!r} has no description; add @tool(desc=...) or a docstring, the "
                "model chooses tools by it"
            )
        specs.append(
            NodeSpec(
                name=name,
                desc=desc.strip(),
                args_model=args_model,
                out_model=out_model,
                node=node,
                **{
                    field.name: getattr(metadata, field.name)
                    for field in dataclasses.fields(ToolMetadata)
                    if field.name != "desc"  # resolved above, with the docstring fallback
                },
            )
        )
    return specs
