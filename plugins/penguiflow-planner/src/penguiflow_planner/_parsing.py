"""Reading the model's reply as an action, tolerating what weak models do.

Handled without asking the model again: code fences, prose around the JSON, several JSON
objects in one reply (the first that is a valid action wins; objects that are each only part
of an action, such as the arguments before the action name, are merged), and common aliases
(`action`/`tool` for `next_node`, `arguments`/`input` for `args`). Everything else becomes a
list of errors the planner shows the model (a repair round): unknown tools, arguments that do
not match the tool's schema, placeholder values, and a final answer of the wrong type.
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

__all__ = ["ActionError", "json_objects", "parse_action"]

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


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object in `text`, in order."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = 0
    while True:
        start = text.find("{", index)
        if start < 0:
            return found
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(value, dict):
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
    if isinstance(value, str) and _PLACEHOLDER.match(value):
        return [f"{where} is a placeholder ({value!r}); put the real value"]
    if isinstance(value, Mapping):
        return [e for k, v in value.items() for e in _placeholders(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _placeholders(v, f"{where}[{i}]")]
    return []


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


def parse_action(
    text: str,
    catalog: Mapping[str, NodeSpec],
    answer_model: type[BaseModel] | None = None,
) -> PlannerAction:
    """The action in `text`, or `ActionError` listing what the model must fix."""
    objects = json_objects(text)
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
