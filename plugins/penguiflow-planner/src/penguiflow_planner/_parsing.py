"""Reading the model's reply as an action, tolerating what weak models do.

Handled without asking the model again: code fences, prose around the JSON, several JSON
objects in one reply (the first that is a valid action wins; objects that are each only part
of an action, such as the arguments before the action name, are merged), and common aliases
(`action`/`tool` for `next_node`, `arguments`/`input` for `args`). Everything else becomes a
list of errors the planner shows the model (a repair round): unknown tools, arguments that do
not match the tool's schema, placeholder values, and a final answer of the wrong type.

The work is bounded whatever the model sends, so that reading a reply never blocks the event
loop for long and never raises anything but `ActionError`: a reply over `max_reply_bytes` is
refused before it is scanned, an object nesting deeper than `max_depth` is refused (the JSON
decoder and the checks after it would otherwise recurse once per level, up to a
`RecursionError`), and the search for JSON objects gives up once broken candidates have cost
a few passes over the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from penguiflow.catalog import NodeSpec
from penguiflow.errors import PenguiFlowError

from ._actions import PlannerAction

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_REPLY_BYTES",
    "MAX_DEPTH_LIMIT",
    "ActionError",
    "json_objects",
    "parse_action",
]

#: far beyond a planner step (an action with its arguments, or a long answer), far below a
#: size whose scanning would hold the event loop
DEFAULT_MAX_REPLY_BYTES = 1_000_000
#: levels of objects and lists in one JSON object; tool arguments rarely need ten
DEFAULT_MAX_DEPTH = 64
#: the most `max_depth` may be set to: the JSON decoder recurses once per level within
#: Python's recursion limit (1,000 frames by default, shared with the caller's stack)
MAX_DEPTH_LIMIT = 256
#: broken candidates (a `{` that does not start valid JSON) may read this many times the
#: text's length in all before the search stops; a few fail at once in ordinary prose
_SCAN_PASSES = 4

_ALIASES = {
    "action": "next_node",
    "tool": "next_node",
    "tool_name": "next_node",
    "arguments": "args",
    "input": "args",
    "parameters": "args",
}
_PLACEHOLDER = re.compile(
    r"^\s*(<[^<>]+>|\.\.\.|…|todo|tbd|placeholder|your[_ ].*here|\{\{.*\}\}|\$\{.*\}|"
    r"insert[_ ].*)\s*$",
    re.IGNORECASE,
)


class ActionError(PenguiFlowError, ValueError):
    """The reply is not a usable action; `errors` say why, for the model to fix."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _too_deep(max_depth: int) -> ActionError:
    return ActionError(
        [
            f"nesting deeper than {max_depth}: reply with a flatter JSON object (at most "
            f"{max_depth} levels of objects and lists)"
        ]
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests objects and lists more than `limit` levels deep (the value
    itself is level 1). A loop with its own stack, not recursion, however deep it goes."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def json_objects(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> list[dict[str, Any]]:
    """Every top-level JSON object in `text`, in order.

    Raises `ActionError` for an object nesting deeper than `max_depth`. Gives up looking
    (returning what it found) once candidates that are not JSON have read `_SCAN_PASSES`
    times the text: each failed candidate would otherwise cost up to the rest of the text,
    quadratic in all for a reply of many unclosed objects."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = 0
    budget = _SCAN_PASSES * len(text)
    while True:
        start = text.find("{", index)
        if start < 0:
            return found
        try:
            value, end = decoder.raw_decode(text, start)
        except RecursionError:
            # Deeper than the decoder can go; stop at once: every `{` inside is as deep.
            raise _too_deep(max_depth) from None
        except ValueError as exc:
            # A JSONDecodeError says where it stopped; another ValueError (an integer with
            # more digits than Python converts) is charged the rest of the text.
            read = exc.pos - start if isinstance(exc, json.JSONDecodeError) else len(text) - start
            budget -= max(read, 1)
            if budget < 0:
                return found
            index = start + 1
            continue
        if isinstance(value, dict):
            if _deeper_than(value, max_depth):
                raise _too_deep(max_depth)
            found.append(value)
        index = end


def _normalise(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[_ALIASES.get(key, key)] = value
    if isinstance(out.get("next_node"), str) and out["next_node"].strip().lower() in (
        "",
        "null",
        "none",
        "final",
        "finish",
        "final_answer",
    ):
        out["next_node"] = None
    return out


def _placeholders(value: Any, where: str) -> list[str]:
    """Every placeholder string in `value`, in document order. A loop with its own stack:
    recursion here crashed the run on arguments nesting a few hundred levels deep."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _PLACEHOLDER.match(item):
                found.append(f"{path} is a placeholder ({item!r}); put the real value")
        elif isinstance(item, Mapping):
            stack.extend(reversed([(v, f"{path}.{k}") for k, v in item.items()]))
        elif isinstance(item, list):
            stack.extend(reversed([(v, f"{path}[{i}]") for i, v in enumerate(item)]))
    return found


def _check_call(
    node: str, args: dict[str, Any], catalog: Mapping[str, NodeSpec], where: str
) -> list[str]:
    spec = catalog.get(node)
    if spec is None:
        known = ", ".join(sorted(catalog)) or "none"
        return [f"{where}: unknown tool {node!r}; the tools are: {known}"]
    errors = _placeholders(args, f"{where}.args")
    if errors:
        return errors
    return [f"{where}.args.{error} (tool {node})" for error in spec.argument_errors(args)]


def _check_answer(action: PlannerAction, answer_model: type[BaseModel] | None) -> list[str]:
    if "answer" not in action.args:
        return ["a final answer needs args.answer (or name a tool in next_node)"]
    answer = action.args["answer"]
    if answer_model is not None:
        try:
            answer_model.model_validate(answer)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
            location = ".".join(str(p) for p in first["loc"])
            return [f"args.answer.{location}: {first['msg']} ({answer_model.__name__})"]
        return []
    if isinstance(answer, int | float | bool):
        action.args["answer"] = str(answer)  # a number for a text answer: accept its text
        return []
    if not isinstance(answer, str):
        return [
            f"args.answer must be text, got {type(answer).__name__}; write the answer as a string"
        ]
    return _placeholders(answer, "args.answer")


def _validate(
    data: Mapping[str, Any], catalog: Mapping[str, NodeSpec], answer_model: type[BaseModel] | None
) -> PlannerAction:
    try:
        action = PlannerAction.model_validate(_normalise(data))
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            location = ".".join(str(p) for p in error["loc"]) or "action"
            errors.append(f"{location}: {error['msg']}")
        raise ActionError(errors) from None
    if action.next_node is not None:
        errors = _check_call(action.next_node, action.args, catalog, "next_node")
    elif action.plan is not None:
        errors = [
            e
            for i, call in enumerate(action.plan)
            for e in _check_call(call.node, call.args, catalog, f"plan[{i}]")
        ]
    else:
        errors = _check_answer(action, answer_model)
    if errors:
        raise ActionError(errors)
    return action


def _utf8_size(text: str, limit: int) -> int:
    """The UTF-8 size of `text`, or its length when that size cannot pass `limit` anyway
    (at most four bytes a character), which spares encoding every ordinary reply."""
    if len(text) * 4 <= limit:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def parse_action(
    text: str,
    catalog: Mapping[str, NodeSpec],
    answer_model: type[BaseModel] | None = None,
    *,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> PlannerAction:
    """The action in `text`, or `ActionError` listing what the model must fix (including a
    reply over `max_reply_bytes` UTF-8 bytes, or nesting deeper than `max_depth`)."""
    size = _utf8_size(text, max_reply_bytes)
    if size > max_reply_bytes:
        raise ActionError(
            [
                f"reply too large: {size} bytes, limit {max_reply_bytes}; reply with one "
                "short JSON object"
            ]
        )
    objects = json_objects(text, max_depth=max_depth)
    if not objects:
        raise ActionError(
            [
                "no JSON object found; reply with one JSON object: "
                '{"thought": ..., "next_node": ..., "args": {...}}'
            ]
        )
    first_error: ActionError | None = None
    for data in objects:
        try:
            return _validate(data, catalog, answer_model)
        except ActionError as exc:
            first_error = first_error or exc
    if len(objects) > 1:
        merged: dict[str, Any] = {}
        for data in objects:
            merged.update(_normalise(data))
        try:
            return _validate(merged, catalog, answer_model)
        except ActionError:
            pass
    assert first_error is not None
    raise first_error
