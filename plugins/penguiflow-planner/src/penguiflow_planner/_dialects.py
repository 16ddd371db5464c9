"""Reading both action dialects into PenguiFlow's shape (`next_node`, `args`, `thought`).

PenguiFlow's dialect: `{"next_node": "final_response", "args": {"answer": ...}}` (older replies
say `args.raw_answer`), `{"next_node": "parallel", "args": {"steps": [...], "join": {...}}}`,
and the shapes its normaliser still reads: `thought`/`plan`/`join` at the top level,
`next_node: null` for a finish, the action nested as `{"action": {...}}`, a bare
`{"answer": ...}`, and a finish whose `args` is the answer itself (a string, or a list of
strings).

Ours: `next_node: null` with `args.answer` for a finish, `plan: [...]` with `join` naming a
join strategy (`"append"`) for a parallel plan, and common aliases (`action`/`tool` for
`next_node`, `arguments`/`input` for `args`, `tool` for a step's `node`).

`normalise` only reshapes; whether the result is a usable action (a known tool, arguments
that fit, an answer that is text) is `_parsing`'s to check, so that every problem reaches the
model as an error it can fix.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ._actions import FINAL_RESPONSE, PARALLEL

__all__ = [
    "BACKGROUND_OPCODES",
    "FINISH_ALIASES",
    "flatten",
    "normalise",
    "normalise_join",
    "normalise_step",
]

#: `next_node` values read as a finish when no tool has that name (lower-cased, trimmed).
FINISH_ALIASES = frozenset(
    {"", "null", "none", "final", "finish", "final_answer", FINAL_RESPONSE, "answer", "respond"}
)
_PARALLEL_ALIASES = frozenset({PARALLEL, "plan"})
#: PenguiFlow's background-task opcodes, which this planner does not offer.
BACKGROUND_OPCODES = frozenset({"task.subagent", "task.tool", "task"})

_KEY_ALIASES = {
    "action": "next_node",
    "tool": "next_node",
    "tool_name": "next_node",
    "arguments": "args",
    "input": "args",
    "parameters": "args",
}
_STEP_ALIASES = {
    "tool": "node",
    "tool_name": "node",
    "next_node": "node",
    "name": "node",
    "arguments": "args",
    "input": "args",
    "parameters": "args",
}
#: Keys of a reply that are not part of a bare answer's payload.
_ACTION_KEYS = frozenset({"thought", "next_node", "args", "plan", "join"})


def _aliased(data: Mapping[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    """`data` with aliases renamed; a key given under its own name wins over an alias."""
    out = {key: value for key, value in data.items() if key not in aliases}
    for key, value in data.items():
        if key in aliases:
            out.setdefault(aliases[key], value)
    return out


def flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """The action's keys at the top level, aliases renamed: `{"action": {...}}` (PenguiFlow's
    nested form) is unwrapped, its keys winning over the outer ones."""
    nested = data.get("action")
    if isinstance(nested, Mapping):
        outer = {key: value for key, value in data.items() if key != "action"}
        data = {**outer, **nested}
    return _aliased(data, _KEY_ALIASES)


def normalise(data: Mapping[str, Any], tools: Collection[str] = ()) -> dict[str, Any]:
    """`{"next_node": str | None, "args": Any, "thought": str}` in PenguiFlow's opcodes
    (with `"conflict": "plan"` when the reply names a tool and also gives a plan).

    `next_node` is None when the reply names no action at all (an error for the caller) and
    may be something other than a string (also an error); `tools` are the catalog's names,
    which win over the finish aliases (a tool may be called `answer`)."""
    flat = flatten(data)
    raw_thought = flat.get("thought")
    thought = raw_thought.strip() if isinstance(raw_thought, str) else ""
    node = flat.get("next_node")
    args = flat.get("args")
    plan = flat.get("plan")
    if plan is not None and (node is None or _lowered(node) in _PARALLEL_ALIASES):
        # Legacy (and ours): the plan and its join at the top level.
        return _action(PARALLEL, {"steps": plan, "join": flat.get("join")}, thought)
    if isinstance(node, str):
        name = node.strip()
        if plan is not None:
            # A tool and a plan: which one the model meant is a guess; it is asked instead.
            return {**_action(name, args, thought), "conflict": "plan"}
        if name in tools:
            return _action(name, args, thought)
        if name.lower() in _PARALLEL_ALIASES:
            return _action(PARALLEL, _parallel_args(args, flat.get("join")), thought)
        if name.lower() in FINISH_ALIASES:
            return _action(FINAL_RESPONSE, finish_args(args), thought)
        return _action(name, args, thought)
    if node is not None:
        return _action(node, args, thought)
    if "next_node" in flat:  # an explicit null: a finish, in both dialects
        return _action(FINAL_RESPONSE, finish_args(args), thought)
    if isinstance(args, Mapping) and ("answer" in args or "raw_answer" in args):
        return _action(FINAL_RESPONSE, finish_args(args), thought)
    if "answer" in flat or "raw_answer" in flat:  # a bare answer (PenguiFlow's weak models)
        payload = {key: value for key, value in flat.items() if key not in _ACTION_KEYS}
        return _action(FINAL_RESPONSE, finish_args(payload), thought)
    return _action(None, args, thought)


def finish_args(args: Any) -> Any:
    """A finish's arguments as a mapping with `answer` when the reply gave one anywhere:
    `args` as the answer text (or a list of text pieces), `args.raw_answer` for `answer`.
    Anything else is returned as it is (refused by the checks)."""
    if args is None:
        return {}
    if isinstance(args, str):
        return {"answer": args.strip()} if args.strip() else {}
    if isinstance(args, list) and all(isinstance(item, str) for item in args):
        pieces = [item for item in args if item.strip()]
        return {"answer": "\n".join(pieces).strip()} if pieces else {}
    if isinstance(args, int | float) and not isinstance(args, bool):
        return {"answer": args}
    if isinstance(args, Mapping):
        out = {str(key): value for key, value in args.items()}
        if "answer" not in out and "raw_answer" in out:
            out["answer"] = out["raw_answer"]
        return out
    return args


def _parallel_args(args: Any, top_level_join: Any) -> Any:
    if not isinstance(args, Mapping):
        return args
    out = dict(args)
    if "steps" not in out and "plan" in out:
        out["steps"] = out.pop("plan")
    if "join" not in out and top_level_join is not None:
        out["join"] = top_level_join
    return out


def normalise_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """A parallel step with aliases renamed (`tool` for `node`, `arguments` for `args`)."""
    return _aliased(step, _STEP_ALIASES)


def normalise_join(join: Any) -> Any:
    """A plan's join: None (the planner's default), a strategy's name, or a join tool
    `{"node", "args", "inject"}`. A join tool without a node is no join (PenguiFlow's
    reading); an `inject` given as the bare mapping is wrapped in `{"mapping": ...}`."""
    if join is None:
        return None
    if isinstance(join, str):
        return join.strip() or None
    if not isinstance(join, Mapping):
        return join
    out = normalise_step(join)
    node = out.get("node")
    if node is None or (isinstance(node, str) and not node.strip()):
        return None
    out.setdefault("args", {})
    inject = out.get("inject")
    if isinstance(inject, Mapping) and "mapping" not in inject:
        out["inject"] = {"mapping": dict(inject)}
    else:
        out.setdefault("inject", None)
    return out


def _action(next_node: Any, args: Any, thought: str) -> dict[str, Any]:
    return {"next_node": next_node, "args": args, "thought": thought}


def _lowered(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) else None
