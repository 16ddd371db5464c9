"""The tool catalog: typed descriptions of what a planner may call.

A `NodeSpec` describes one tool: its name, a description, input and output Pydantic models
(and their JSON schemas), how it affects the world (`side_effects`), tags, examples and
hints. Nodes become specs with `@tool(...)` metadata and `build_catalog(nodes, registry)`;
connectors (MCP, UTCP) build specs from the JSON schemas their servers publish, with
`NodeSpec.from_schema(...)`.

The names, `NodeSpec`'s field order, `@tool`'s keywords and the keys of
`NodeSpec.to_tool_record()` are PenguiFlow 3.11's, so its tools run unchanged. Ours besides:
specs known only by JSON schemas (`input_schema`, `output_schema`, `call`, `from_schema`),
`argument_errors`, `ToolMetadata` and `ToolDescriptionWarning`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, TypeAlias, TypeVar, get_args

from pydantic import BaseModel, Field, ValidationError, field_validator

from .errors import (
    ConfigurationError,
    InvalidTypeError,
    PenguiFlowError,
    UnknownNameError,
    describe_exception,
)
from .node import Node
from .registry import ModelRegistry

__all__ = [
    "NodeSpec",
    "SideEffect",
    "ToolDescriptionWarning",
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


class ToolDescriptionWarning(PenguiFlowError, UserWarning):
    """A node became a tool without a description, so the model sees only its name.

    Describe it with `@tool(desc=...)` or a docstring. A warning rather than an error, as in
    PenguiFlow 3.x; it derives from `PenguiFlowError` too, so where warnings are turned into
    errors it is caught like any other PenguiFlow failure."""


class ToolInputExample(BaseModel):
    """Example arguments for a tool, shown to the model."""

    args: dict[str, Any]
    description: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("args")
    @classmethod
    def _args_are_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Examples reach the model as JSON: one that cannot be written fails where it is
        # declared, not later while a prompt is being built.
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"example args must be JSON-serialisable ({describe_exception(exc)}); use "
                "strings, numbers, booleans, None, lists and dicts"
            ) from None
        return value

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, value: list[str]) -> list[str]:
        return [tag for tag in dict.fromkeys(value) if tag]


#: What `examples=` accepts: examples (models or mappings), or a single mapping.
ExamplesInput: TypeAlias = Sequence[ToolInputExample | Mapping[str, Any]] | Mapping[str, Any]


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
    #: None: the catalog's default (`build_catalog(..., default_loading_mode=...)`)
    loading_mode: ToolLoadingMode | None = None


def _check_side_effects(value: str, where: str) -> SideEffect:
    if value not in _SIDE_EFFECTS:
        raise ConfigurationError(
            f"{where}: side_effects must be one of {', '.join(_SIDE_EFFECTS)}, got {value!r}"
        )
    return value  # type: ignore[return-value]


def _loading_mode(value: ToolLoadingMode | str, where: str) -> ToolLoadingMode:
    try:
        return ToolLoadingMode(value)
    except ValueError:
        choices = ", ".join(mode.value for mode in ToolLoadingMode)
        raise ConfigurationError(
            f"{where}: loading_mode must be one of {choices}, got {value!r}"
        ) from None


def _unique(values: Iterable[str] | None, what: str, where: str) -> tuple[str, ...]:
    """The values with duplicates dropped, each first occurrence kept in place."""
    if values is None:
        return ()
    if isinstance(values, str):  # would otherwise become one tag per character
        raise InvalidTypeError(
            f"{where}: {what} must be a list of strings, got the string {values!r}; "
            f"write {what}=[{values!r}]"
        )
    return tuple(dict.fromkeys(values))


def _examples(examples: ExamplesInput | None, where: str) -> tuple[ToolInputExample, ...]:
    if not examples:
        return ()
    if isinstance(examples, Mapping):  # one example, as PenguiFlow allows
        examples = [examples]
    if isinstance(examples, str | bytes) or not isinstance(examples, Sequence):
        raise InvalidTypeError(
            f"{where}: examples must be a list of examples (ToolInputExample or mappings like "
            f"{{'args': {{...}}}}) or one mapping, got {type(examples).__name__}"
        )
    parsed: list[ToolInputExample] = []
    for example in examples:
        if isinstance(example, ToolInputExample):
            parsed.append(example)
        elif isinstance(example, Mapping):
            parsed.append(ToolInputExample.model_validate(dict(example)))
        else:
            raise InvalidTypeError(
                f"{where}: each example must be a ToolInputExample or a mapping like "
                f"{{'args': {{...}}, 'description': '...'}}, got {type(example).__name__}"
            )
    return tuple(parsed)


def tool(
    *,
    desc: str | None = None,
    side_effects: SideEffect = "pure",
    tags: Sequence[str] | None = None,
    auth_scopes: Sequence[str] | None = None,
    cost_hint: str | None = None,
    latency_hint_ms: int | None = None,
    safety_notes: str | None = None,
    arg_validation: Mapping[str, Any] | None = None,
    arg_validator: Callable[..., Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    loading_mode: ToolLoadingMode | str | None = None,
    examples: ExamplesInput | None = None,
) -> Callable[[F], F]:
    """Describe a node function as a tool; the function itself is returned unchanged.

    Repeated tags and auth scopes are dropped (first occurrence kept). `arg_validation` (a
    mapping of checks) and `arg_validator` (a callable judging a call's arguments) are
    recorded in `extra` under those names, where a planner reads them before calling the
    tool, as in PenguiFlow. `loading_mode=None` leaves the choice to `build_catalog`'s
    `default_loading_mode`. `examples` may be one mapping; examples given as
    `extra["examples"]` take their place (PenguiFlow's rule)."""

    def decorate(func: F) -> F:
        where = f"@tool on {getattr(func, '__name__', repr(func))}"
        recorded = dict(extra or {})
        if arg_validation is not None:
            if not isinstance(arg_validation, Mapping):
                raise InvalidTypeError(
                    f"{where}: arg_validation must be a mapping of checks, got "
                    f"{type(arg_validation).__name__}; a custom check goes in arg_validator"
                )
            recorded["arg_validation"] = dict(arg_validation)
        if arg_validator is not None:
            if not callable(arg_validator):
                raise InvalidTypeError(
                    f"{where}: arg_validator must be callable, got {type(arg_validator).__name__}"
                )
            recorded["arg_validator"] = arg_validator
        given_examples = recorded.pop("examples") if "examples" in recorded else examples
        metadata = ToolMetadata(
            desc=desc,
            side_effects=_check_side_effects(side_effects, where),
            tags=_unique(tags, "tags", where),
            auth_scopes=_unique(auth_scopes, "auth_scopes", where),
            cost_hint=cost_hint,
            latency_hint_ms=latency_hint_ms,
            safety_notes=safety_notes,
            extra=recorded,
            examples=_examples(given_examples, where),
            loading_mode=None if loading_mode is None else _loading_mode(loading_mode, where),
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
    """One tool of the catalog.

    The fields come in PenguiFlow 3.11's order (`node, name, desc, args_model, out_model,
    side_effects, tags, auth_scopes, cost_hint, latency_hint_ms, safety_notes, extra,
    loading_mode, examples`), then ours: `input_schema`, `output_schema` and `call` describe
    a tool known only by JSON schemas (a connector's, whose `node` is None). A spec needs a
    `name`, and `args_model` or `input_schema`. Repeated tags and auth scopes are dropped;
    `loading_mode` may be given as a string and `examples` as mappings.
    """

    node: Node | None = None
    name: str = ""
    desc: str = ""
    args_model: type[BaseModel] | None = None
    out_model: type[BaseModel] | None = None
    side_effects: SideEffect = "pure"
    tags: Sequence[str] = ()
    auth_scopes: Sequence[str] = ()
    cost_hint: str | None = None
    latency_hint_ms: int | None = None
    safety_notes: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    loading_mode: ToolLoadingMode = ToolLoadingMode.ALWAYS
    examples: Sequence[ToolInputExample] = ()
    #: a schema given as JSON (a connector's tool) instead of a model
    input_schema: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None
    #: how to call a tool that is not a node
    call: ToolCall | None = None

    def __post_init__(self) -> None:
        if isinstance(self.node, str):
            raise InvalidTypeError(
                f"NodeSpec's first field is node (PenguiFlow's order: node, name, desc, "
                f"args_model, out_model, ...), got the string {self.node!r}; pass "
                "name=... and the rest by keyword"
            )
        if not self.name or not isinstance(self.name, str):
            raise ConfigurationError(
                f"a tool spec needs a name, got {self.name!r}: NodeSpec(node, name, desc, "
                "args_model, out_model) or NodeSpec(name=..., desc=..., input_schema=...)"
            )
        where = f"tool {self.name!r}"
        if self.args_model is None and self.input_schema is None:
            raise ConfigurationError(
                f"{where} needs args_model (a Pydantic model) or input_schema (JSON)"
            )
        _check_side_effects(self.side_effects, where)
        # Normalised in place (the spec is frozen once built): PenguiFlow's users pass lists,
        # strings and mappings where these fields hold tuples, enums and models.
        object.__setattr__(self, "tags", _unique(self.tags, "tags", where))
        object.__setattr__(self, "auth_scopes", _unique(self.auth_scopes, "auth_scopes", where))
        object.__setattr__(self, "loading_mode", _loading_mode(self.loading_mode, where))
        object.__setattr__(self, "examples", _examples(self.examples, where))

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

    def examples_payload(self) -> list[dict[str, Any]]:
        """The examples as JSON-ready dicts (`args`, `description`, `tags`). A spec without
        examples of its own uses `extra["examples"]`, as PenguiFlow does."""
        examples = self.examples or _examples(self.extra.get("examples"), f"tool {self.name!r}")
        return [example.model_dump() for example in examples]

    def to_tool_record(self) -> dict[str, Any]:
        """The JSON-ready description a planner puts in its prompt.

        PenguiFlow's keys, each always present: `name`, `desc`, `side_effects`,
        `loading_mode`, `tags`, `auth_scopes`, `cost_hint`, `latency_hint_ms`,
        `safety_notes`, `args_schema`, `out_schema` (None when the tool declares no output),
        `extra` and `examples`. `extra` keeps only what the model can read: callables (an
        `arg_validator`) and values JSON cannot write are for the planner, and examples have
        their own key."""
        return {
            "name": self.name,
            "desc": self.desc,
            "side_effects": self.side_effects,
            "loading_mode": self.loading_mode.value,
            "tags": list(self.tags),
            "auth_scopes": list(self.auth_scopes),
            "cost_hint": self.cost_hint,
            "latency_hint_ms": self.latency_hint_ms,
            "safety_notes": self.safety_notes,
            "args_schema": self.args_schema,
            "out_schema": self.out_schema,
            "extra": _readable_extra(self.extra),
            "examples": self.examples_payload(),
        }

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


def _readable_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    readable: dict[str, Any] = {}
    for key, value in extra.items():
        if key == "examples" or callable(value):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        readable[str(key)] = value
    return readable


def build_catalog(
    nodes: Sequence[Node],
    registry: ModelRegistry,
    *,
    default_loading_mode: ToolLoadingMode | str | None = None,
) -> list[NodeSpec]:
    """A spec per node: models from `registry`, the rest from `@tool` metadata.

    The description falls back to the function's docstring, and then to its name with a
    `ToolDescriptionWarning`. A node whose `@tool` gives no `loading_mode` gets
    `default_loading_mode` (`ToolLoadingMode.ALWAYS` when None). A node missing from the
    registry, or two nodes with one name, is an error naming it."""
    default_mode = (
        ToolLoadingMode.ALWAYS
        if default_loading_mode is None
        else _loading_mode(default_loading_mode, "build_catalog(default_loading_mode=...)")
    )
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
        desc = (metadata.desc or inspect.getdoc(node.func) or "").strip()
        if not desc:
            desc = getattr(node.func, "__name__", name)
            warnings.warn(
                f"node {name!r} has no description, so the model sees only its name; "
                "describe it with @tool(desc=...) or a docstring",
                ToolDescriptionWarning,
                stacklevel=2,
            )
        specs.append(
            NodeSpec(
                node=node,
                name=name,
                desc=desc,
                args_model=args_model,
                out_model=out_model,
                loading_mode=metadata.loading_mode or default_mode,
                **{
                    field.name: getattr(metadata, field.name)
                    for field in dataclasses.fields(ToolMetadata)
                    # resolved above: the docstring fallback, the catalog's default
                    if field.name not in {"desc", "loading_mode"}
                },
            )
        )
    return specs
