"""The JSON schema the planner asks the model's replies to follow (`json_schema_mode`).

The shape is PenguiFlow's: an OpenAI-style `response_format`,
`{"type": "json_schema", "json_schema": {"name": "planner_action", "schema": ...}}`, whose
schema is an object with `next_node` and `args`. Ours is tighter in two ways, so that a
grammar-constrained server (llama.cpp, vLLM) can only produce an action the planner accepts:

- `next_node` is an `enum` of the visible tools and the reserved opcodes, never free text;
- with `branches` (the default) the root also carries an `anyOf` with one branch per
  `next_node` value, each pinning `args`: a `final_response` must carry a non-empty
  `args.answer` (and `args.structured` when the run has an answer schema), a `parallel` plan
  must list its `steps`, and a tool gets its own argument schema when `tool_schemas` gives it.

Servers that turn the schema into a grammar follow the `anyOf` (llama.cpp reads it before the
root's own keys); validators that do not understand `anyOf` still see a complete root object
(`type: object`, `properties`, `required`, `additionalProperties: false`).

PenguiFlow 3.11 has a Gemini-only variant of its schema (an `allOf` with `if`/`then` requiring
`args.answer` on a finish), because other providers reject `allOf`. We do not copy it: the
finish branch above says the same thing with `anyOf`, which grammar engines support and
`if`/`then` is not (llama.cpp ignores it), so every model gets one schema. `model` is accepted
for that signature and reserved for a provider that needs a variant of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from penguiflow.errors import ConfigurationError, PenguiFlowError

from ._actions import FINAL_RESPONSE, PARALLEL, SPECIAL_NODES

__all__ = ["ACTION_SCHEMA_NAME", "THOUGHT_MAX_LENGTH", "action_response_format", "inline_refs"]

#: The longest `thought` the action schema allows, in characters: a sentence or two of
#: reasoning, which the model is asked for (the answer itself is not capped).
THOUGHT_MAX_LENGTH = 500
#: The `json_schema.name` PenguiFlow gives the action schema (providers log it).
ACTION_SCHEMA_NAME = "planner_action"

_OPEN_OBJECT: dict[str, Any] = {"type": "object"}
#: Where a schema keeps the definitions its `$ref`s point at (Pydantic: `$defs`).
_DEFINITION_KEYS = ("$defs", "definitions")


def action_response_format(
    tool_names: Sequence[str],
    *,
    model: str | None = None,
    parallel: bool = True,
    join_strategies: Sequence[str] = (),
    tool_schemas: Mapping[str, Mapping[str, Any]] | None = None,
    answer_schema: Mapping[str, Any] | None = None,
    branches: bool = True,
    max_string_length: int | None = None,
    max_parallel: int | None = None,
) -> dict[str, Any]:
    """The `response_format` asking for one planner action.

    `tool_names` are the tools the model may call now (those the run's policies leave
    visible); `parallel` adds the `parallel` opcode (turned off when there is no tool);
    `join_strategies` are the join strategy names a parallel plan may give as `args.join`.
    `tool_schemas` maps a tool to its argument schema (a tool missing there gets any object);
    `answer_schema` is the JSON schema of `final_response_model`, required as
    `args.structured` on a finish. `branches=False` leaves `args` a plain object, for a
    provider that refuses `anyOf`. `max_string_length` caps every free text of the action
    (the answer, the thought, tools' text arguments without a limit of their own): a grammar
    server then always closes the JSON, where a small model may otherwise repeat itself until
    its token limit cuts the reply (off by default: it also caps long answers).
    `max_parallel` caps a plan's steps (`maxItems`), as the run's parallel limit does."""
    del model  # one schema for every model: see the module's note on Gemini
    tools = _tool_list(tool_names)
    opcodes = [FINAL_RESPONSE, *([PARALLEL] if parallel and tools else [])]
    next_node = {"type": "string", "enum": [*tools, *opcodes]}
    schema = _action_object(next_node, dict(_OPEN_OBJECT))
    if branches:
        schemas = tool_schemas or {}
        schema["anyOf"] = [
            *(_action_object({"const": name}, _args_schema(schemas.get(name))) for name in tools),
            _action_object({"const": FINAL_RESPONSE}, _finish_args(answer_schema)),
        ]
        if PARALLEL in opcodes:
            plan = _parallel_args(tools, schemas, join_strategies)
            if max_parallel is not None:
                _check_limit("max_parallel", max_parallel)
                plan["properties"]["steps"]["maxItems"] = max_parallel
            schema["anyOf"].append(_action_object({"const": PARALLEL}, plan))
    if max_string_length is not None:
        _check_limit("max_string_length", max_string_length)
        _cap_strings(schema, max_string_length)
    return {"type": "json_schema", "json_schema": {"name": ACTION_SCHEMA_NAME, "schema": schema}}


def _tool_list(tool_names: Sequence[str]) -> list[str]:
    """The tool names once each, in order; a reserved opcode is refused, since the model could
    not tell the tool from the opcode."""
    if isinstance(tool_names, str):
        raise ConfigurationError(
            f"tool_names must be a sequence of names, got the string {tool_names!r}; "
            f"wrap it in a list: [{tool_names!r}]"
        )
    tools = list(dict.fromkeys(str(name) for name in tool_names))
    clashing = sorted(SPECIAL_NODES.intersection(tools))
    if clashing:
        raise ConfigurationError(
            f"tool name(s) {clashing} are reserved planner opcodes "
            f"({', '.join(sorted(SPECIAL_NODES))}); rename the tool(s)"
        )
    return tools


def _action_object(next_node: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    # `thought` is allowed (our prompts ask for it) but not required, as PenguiFlow leaves it
    # out of the schema; required keys come first, which grammar engines keep in order. It is
    # capped (THOUGHT_MAX_LENGTH): a small model on a grammar server otherwise repeats itself
    # there until its token limit cuts the reply short of its closing brace.
    thought = {"type": "string", "maxLength": THOUGHT_MAX_LENGTH}
    return {
        "type": "object",
        "properties": {"next_node": next_node, "args": args, "thought": thought},
        "required": ["next_node", "args"],
        "additionalProperties": False,
    }


def _args_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """A tool's argument schema made self-contained (no `$ref`), or any object when it has
    none, cannot be inlined (a recursive model), or does not describe an object."""
    if not schema:
        return dict(_OPEN_OBJECT)
    inlined = inline_refs(schema)
    if inlined is None:
        return dict(_OPEN_OBJECT)
    if inlined.get("type", "object") != "object":
        return dict(_OPEN_OBJECT)
    inlined.setdefault("type", "object")
    return inlined


def _finish_args(answer_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"answer": {"type": "string", "minLength": 1}}
    required = ["answer"]
    if answer_schema is not None:
        structured = inline_refs(answer_schema)
        properties["structured"] = structured if structured is not None else dict(_OPEN_OBJECT)
        required.append("structured")
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _parallel_args(
    tools: list[str], schemas: Mapping[str, Mapping[str, Any]], join_strategies: Sequence[str]
) -> dict[str, Any]:
    step: dict[str, Any]
    if any(name in schemas for name in tools):
        step = {"anyOf": [_step(name, _args_schema(schemas.get(name))) for name in tools]}
    else:
        step = _step_any(tools)
    join_tool = {
        "type": "object",
        "properties": {
            "node": {"type": "string", "enum": list(tools)},
            "args": dict(_OPEN_OBJECT),
            "inject": {
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {
                            "mapping": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            }
                        },
                        "required": ["mapping"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "required": ["node"],
        "additionalProperties": False,
    }
    joins: list[dict[str, Any]] = [{"type": "null"}, join_tool]
    names = list(dict.fromkeys(join_strategies))
    if names:
        joins.insert(1, {"type": "string", "enum": names})
    return {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": step, "minItems": 1},
            "join": {"anyOf": joins},
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


def _step(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"node": {"const": name}, "args": args},
        "required": ["node", "args"],
        "additionalProperties": False,
    }


def _step_any(tools: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"node": {"type": "string", "enum": list(tools)}, "args": dict(_OPEN_OBJECT)},
        "required": ["node", "args"],
        "additionalProperties": False,
    }


def inline_refs(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """`schema` with every local `$ref` (`#/$defs/X`, `#/definitions/X`) replaced by what it
    points at and the definitions dropped, so it can sit inside another schema; None when a
    reference is recursive or points nowhere (such a schema cannot be inlined)."""
    definitions: dict[str, Any] = {}
    for key in _DEFINITION_KEYS:
        found = schema.get(key)
        if isinstance(found, Mapping):
            definitions.update({f"#/{key}/{name}": value for name, value in found.items()})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if ref in seen or ref not in definitions:
                    raise _Uninlinable
                target = resolve(definitions[ref], (*seen, ref))
                siblings = {k: resolve(v, seen) for k, v in node.items() if k != "$ref"}
                return {**target, **siblings} if isinstance(target, dict) else target
            return {
                key: resolve(value, seen)
                for key, value in node.items()
                if key not in _DEFINITION_KEYS
            }
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        return copy.copy(node)

    try:
        result = resolve(schema, ())
    except _Uninlinable:
        return None
    return result if isinstance(result, dict) else None


def _check_limit(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1 or None, got {value!r}")


def _cap_strings(schema: dict[str, Any], limit: int) -> None:
    """Give every free-text string schema in `schema` a `maxLength` of `limit` (in place);
    strings that are already bounded or chosen from a list are left alone."""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        is_text = kind == "string" or (isinstance(kind, list) and "string" in kind)
        if is_text and not {"maxLength", "enum", "const", "format", "pattern"} & node.keys():
            node["maxLength"] = limit
        stack.extend(value for value in node.values() if isinstance(value, dict | list))


class _Uninlinable(PenguiFlowError):
    """A `$ref` that is recursive or dangling (internal: turned into None)."""
