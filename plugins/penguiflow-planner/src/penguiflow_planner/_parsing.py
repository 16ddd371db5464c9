"""Reading the model's reply as an action, tolerating what weak models do.

Both dialects are read (PenguiFlow's and ours, see `_dialects`) and normalised to PenguiFlow's
opcodes, so the planner sees one `PlannerAction` shape. Handled without asking the model
again: code fences, prose around the JSON, several JSON objects in one reply (the first that
is a valid action wins, the other valid ones are kept as `alternate_actions`; objects that are
each only part of an action, such as the arguments before the action name, are merged), a
reply that is a JSON string holding the JSON, a Python-style dict (single quotes), and common
aliases. Everything else becomes a list of errors the planner shows the model (a repair
round): no action, a plan without steps, placeholder values, a final answer that is missing,
empty or of the wrong type, and, when the caller passes the catalog, unknown tools and
arguments that do not match a tool's schema.

The work is bounded whatever the model sends, so that reading a reply never blocks the event
loop for long and never raises anything but `ActionError`: a reply over `max_reply_bytes` is
refused before it is scanned, an object nesting deeper than `max_depth` is refused (the JSON
decoder and the checks after it would otherwise recurse once per level, up to a
`RecursionError`), and the search for JSON objects gives up once broken candidates have cost
a few passes over the text.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from penguiflow.catalog import NodeSpec
from penguiflow.errors import PenguiFlowError

from ._actions import FINAL_RESPONSE, PARALLEL, SPECIAL_NODES, ParallelJoin, PlannerAction
from ._dialects import BACKGROUND_OPCODES, flatten, normalise, normalise_join, normalise_step

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


#: Other valid actions of a reply kept on the chosen one (`alternate_actions`), at most.
_MAX_ALTERNATES = 5
_BACKGROUND_ERROR = (
    "next_node {node!r}: background tasks are not available in this planner; call the tool "
    "directly (or run several at once with next_node 'parallel')"
)
_HINT = '{"next_node": "<tool or final_response>", "args": {...}}'


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


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


def _call_errors(
    node: str, args: Mapping[str, Any], catalog: Mapping[str, NodeSpec] | None, where: str
) -> list[str]:
    """What is wrong with calling `node` with `args`: placeholders always; an unknown tool and
    arguments that do not fit when the catalog is given."""
    spec = catalog.get(node) if catalog is not None else None
    if catalog is not None and spec is None:
        known = ", ".join(sorted(catalog)) or "none"
        return [f"{where}: unknown tool {node!r}; the tools are: {known}"]
    errors = _placeholders(args, f"{where}.args")
    if errors or spec is None:
        return errors
    return [f"{where}.args.{error} (tool {node})" for error in spec.argument_errors(args)]


def _tool_args(node: str, args: Any, where: str) -> tuple[dict[str, Any], list[str]]:
    if args is None:
        return {}, []
    if not isinstance(args, Mapping):
        return {}, [
            f"{where}.args must be a JSON object of {node}'s arguments, got a {_json_type(args)}"
        ]
    return {str(key): value for key, value in args.items()}, []


def _check_tool(
    node: str, args: Any, catalog: Mapping[str, NodeSpec] | None
) -> tuple[dict[str, Any], list[str]]:
    clean, errors = _tool_args(node, args, "next_node")
    if errors:
        return clean, [error.replace("next_node.args", "args", 1) for error in errors]
    return clean, [
        error.replace("next_node.args", "args", 1)
        for error in _call_errors(node, clean, catalog, "next_node")
    ]


def _check_parallel(
    args: Any, catalog: Mapping[str, NodeSpec] | None, join_strategies: Collection[str] | None
) -> tuple[dict[str, Any], list[str]]:
    if not isinstance(args, Mapping):
        return {}, [
            'a parallel plan needs args {"steps": [{"node": <tool>, "args": {...}}, ...], '
            f'"join": ...}}, got a {_json_type(args)}'
        ]
    steps = args.get("steps")
    if not isinstance(steps, list) or not steps:
        return {}, ['args.steps must list at least one call: [{"node": <tool>, "args": {...}}]']
    errors: list[str] = []
    clean: list[dict[str, Any]] = []
    for index, raw in enumerate(steps):
        where = f"args.steps[{index}]"
        if not isinstance(raw, Mapping):
            errors.append(f'{where} must be an object {{"node": <tool>, "args": {{...}}}}')
            continue
        step = normalise_step(raw)
        node = step.get("node")
        if not isinstance(node, str) or not node.strip():
            errors.append(f"{where}.node: name the tool this step calls")
            continue
        node = node.strip()
        if node in SPECIAL_NODES:
            errors.append(f"{where}.node: {node!r} is not a tool; each step calls a tool")
            continue
        step_args, problems = _tool_args(node, step.get("args"), where)
        errors += problems or _call_errors(node, step_args, catalog, where)
        clean.append({"node": node, "args": step_args})
    join, join_errors = _check_join(args.get("join"), catalog, join_strategies)
    return {"steps": clean, "join": join}, errors + join_errors


def _check_join(
    raw: Any, catalog: Mapping[str, NodeSpec] | None, join_strategies: Collection[str] | None
) -> tuple[Any, list[str]]:
    join = normalise_join(raw)
    if join is None:
        return None, []
    if isinstance(join, str):
        if join_strategies is not None and join not in join_strategies:
            known = ", ".join(sorted(join_strategies)) or "none"
            return join, [f"args.join: no join strategy {join!r}; use one of: {known}"]
        return join, []
    if not isinstance(join, Mapping):
        return None, [
            "args.join must be null, a join strategy's name, or a join tool "
            f'{{"node": <tool>, "args": {{...}}, "inject": ...}}, got a {_json_type(join)}'
        ]
    try:
        model = ParallelJoin.model_validate(join)
    except ValidationError as exc:
        return None, _pydantic_errors(exc, "args.join")
    errors: list[str] = []
    if catalog is not None and model.node not in catalog:
        known = ", ".join(sorted(catalog)) or "none"
        errors.append(f"args.join.node: unknown tool {model.node!r}; the tools are: {known}")
    errors += _placeholders(model.args, "args.join.args")
    return model.model_dump(), errors


def _check_finish(
    args: Any, answer_model: type[BaseModel] | None
) -> tuple[dict[str, Any], list[str]]:
    if not isinstance(args, Mapping):
        return {}, [
            f"args of a final_response must be an object with the answer, got a "
            f'{_json_type(args)}: {{"answer": "..."}}'
        ]
    out = dict(args)
    if answer_model is not None:
        errors = _check_structured(out, answer_model)
    else:
        errors = _check_answer_text(out)
    if errors:
        return out, errors
    out.setdefault("raw_answer", out["answer"])  # PenguiFlow keeps both keys
    return out, []


def _check_answer_text(args: dict[str, Any]) -> list[str]:
    if "answer" not in args:
        return ["a final answer needs args.answer (or name a tool in next_node)"]
    answer = args["answer"]
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        args["answer"] = answer = str(answer)  # a number for a text answer: accept its text
    if not isinstance(answer, str):
        return [
            f"args.answer must be text, got {type(answer).__name__}; write the answer as a string"
        ]
    if not answer.strip():
        return ["args.answer is empty; write the answer (or name a tool in next_node)"]
    return _placeholders(answer, "args.answer")


def _check_structured(args: dict[str, Any], answer_model: type[BaseModel]) -> list[str]:
    """With a `final_response_model`, the data goes in `args.structured` (PenguiFlow's); our
    dialect's object in `args.answer`, or that object written as JSON text, is read too.
    `structured` becomes the validated data and `answer` stays (or becomes) its text."""
    answer = args.get("answer")
    if "structured" in args:
        candidate = args["structured"]
    elif isinstance(answer, Mapping):
        candidate = answer
    else:
        candidate = _json_object_in(answer)
        if candidate is None:
            return [
                "a final answer needs args.structured: an object matching "
                f"{answer_model.__name__} (and args.answer, the answer as text)"
            ]
    try:
        validated = answer_model.model_validate(candidate)
    except ValidationError as exc:
        return _pydantic_errors(exc, "args.structured", f" ({answer_model.__name__})")[:1]
    args["structured"] = validated.model_dump(mode="json")
    if not isinstance(answer, str) or not answer.strip():
        args["answer"] = json.dumps(args["structured"], ensure_ascii=False)
    return _placeholders(args["answer"], "args.answer")


def _json_object_in(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value.strip().startswith("{"):
        return None
    try:
        loaded = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _pydantic_errors(exc: ValidationError, where: str, suffix: str = "") -> list[str]:
    errors = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"])
        errors.append(f"{where}{'.' + location if location else ''}: {error['msg']}{suffix}")
    return errors


def _validate(
    data: Mapping[str, Any],
    catalog: Mapping[str, NodeSpec] | None,
    answer_model: type[BaseModel] | None,
    join_strategies: Collection[str] | None,
) -> PlannerAction:
    draft = normalise(data, catalog.keys() if catalog is not None else ())
    node = draft["next_node"]
    if draft.get("conflict"):
        raise ActionError(
            [
                f"give either next_node ({node!r}) or a parallel plan, not both; to run tools at "
                'once, reply {"next_node": "parallel", "args": {"steps": [...]}}'
            ]
        )
    if node is None:
        raise ActionError([f"next_node is missing; reply with {_HINT}"])
    if not isinstance(node, str):
        raise ActionError(
            [
                "next_node must be text (a tool's name or 'final_response'), got a "
                f"{_json_type(node)}"
            ]
        )
    if node == FINAL_RESPONSE:
        args, errors = _check_finish(draft["args"], answer_model)
    elif node == PARALLEL:
        args, errors = _check_parallel(draft["args"], catalog, join_strategies)
    elif node in BACKGROUND_OPCODES and (catalog is None or node not in catalog):
        args, errors = {}, [_BACKGROUND_ERROR.format(node=node)]
    else:
        args, errors = _check_tool(node, draft["args"], catalog)
    if errors:
        raise ActionError(errors)
    return PlannerAction(next_node=node, args=args, thought=draft["thought"])


def _utf8_size(text: str, limit: int) -> int:
    """The UTF-8 size of `text`, or its length when that size cannot pass `limit` anyway
    (at most four bytes a character), which spares encoding every ordinary reply."""
    if len(text) * 4 <= limit:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _candidates(text: str, max_depth: int) -> list[dict[str, Any]]:
    """The JSON objects of a reply; also those of a reply that is a JSON string holding the
    JSON (some providers encode it twice), or failing all else a Python-style dict (single
    quotes, True/None)."""
    stripped = text.strip()
    if len(stripped) > 1 and stripped[0] == stripped[-1] == '"':
        try:
            inner = json.loads(stripped)
        except (ValueError, RecursionError):
            inner = None
        if isinstance(inner, str):
            return json_objects(inner, max_depth=max_depth)
    found = json_objects(text, max_depth=max_depth)
    if found:
        return found
    start, end = stripped.find("{"), stripped.rfind("}")
    if start < 0 or end <= start:
        return []
    try:
        value = ast.literal_eval(stripped[start : end + 1])
        # Only what JSON can say: sets, bytes and the like are not an action.
        value = json.loads(json.dumps(value))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []
    if not isinstance(value, dict):
        return []
    if _deeper_than(value, max_depth):
        raise _too_deep(max_depth)
    return [value]


def _split_action(objects: Sequence[Mapping[str, Any]]) -> bool:
    """Whether `objects` are the parts of one action: one names it without arguments,
    another gives arguments without naming anything."""
    flat = [flatten(data) for data in objects]
    named_only = any("next_node" in d and "args" not in d and "plan" not in d for d in flat)
    args_only = any("args" in d and "next_node" not in d and "plan" not in d for d in flat)
    return len(objects) > 1 and named_only and args_only


def _alternates(
    objects: list[dict[str, Any]],
    chosen: int,
    validate: Any,
) -> list[dict[str, Any]] | None:
    """The other valid actions of the reply, shortly: a final answer by its length only."""
    found: list[dict[str, Any]] = []
    for index, data in enumerate(objects):
        if index == chosen or len(found) >= _MAX_ALTERNATES:
            continue
        try:
            action: PlannerAction = validate(data)
        except ActionError:
            continue
        args = dict(action.args)
        if action.is_finish:
            args = {"answer_len": len(str(action.answer))}
        found.append({"next_node": action.next_node, "args": args})
    return found or None


def parse_action(
    text: str,
    catalog: Mapping[str, NodeSpec] | None = None,
    answer_model: type[BaseModel] | None = None,
    *,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    join_strategies: Collection[str] | None = None,
) -> PlannerAction:
    """The action in `text` in PenguiFlow's shape, or `ActionError` listing what the model
    must fix (including a reply over `max_reply_bytes` UTF-8 bytes, or nesting deeper than
    `max_depth`).

    `catalog` (tools by name), when given, refuses unknown tools and arguments that do not fit
    their schema; `answer_model` (PenguiFlow's `final_response_model`) requires a finish's
    `args.structured` to match it; `join_strategies`, when given, are the names a plan's
    `join` may use. `raw_llm_response` is `text`."""
    size = _utf8_size(text, max_reply_bytes)
    if size > max_reply_bytes:
        raise ActionError(
            [
                f"reply too large: {size} bytes, limit {max_reply_bytes}; reply with one "
                "short JSON object"
            ]
        )
    objects = _candidates(text, max_depth)
    if not objects:
        raise ActionError([f"no JSON object found; reply with one JSON object: {_HINT}"])

    def validate(data: Mapping[str, Any]) -> PlannerAction:
        return _validate(data, catalog, answer_model, join_strategies)

    if _split_action(objects):
        # One action written as two objects (its arguments, then its name): the name-only
        # part would validate alone, with empty arguments, so the merge comes first.
        merged_first: dict[str, Any] = {}
        for data in objects:
            merged_first.update(flatten(data))
        try:
            action = validate(merged_first)
        except ActionError:
            pass
        else:
            action.raw_llm_response = text
            return action
    first_error: ActionError | None = None
    for index, data in enumerate(objects):
        try:
            action = validate(data)
        except ActionError as exc:
            first_error = first_error or exc
            continue
        action.raw_llm_response = text
        if len(objects) > 1:
            action.alternate_actions = _alternates(objects, index, validate)
        return action
    if len(objects) > 1:
        merged: dict[str, Any] = {}
        for data in objects:
            merged.update(flatten(data))
        try:
            action = validate(merged)
        except ActionError:
            pass
        else:
            action.raw_llm_response = text
            return action
    assert first_error is not None
    raise first_error
