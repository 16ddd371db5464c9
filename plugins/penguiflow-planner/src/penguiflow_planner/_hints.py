"""Planning hints: the `planning_hints` mapping of `ReactPlanner` (PenguiFlow 3.11's keys).

Hints are told to the model in the system prompt, and some are enforced before an action runs
(`PlanningHints.check`): a disallowed tool, a parallel plan wider than allowed, a tool that
must run on its own inside a parallel plan. Ordering hints are soft: the first call out of the
preferred order is turned back once with a reminder, and the model may insist.

The mapping is checked when the planner is built. A wrong type is a `ConfigurationError`
naming the key. An unknown key is a `PlanningHintsWarning` and is ignored, as PenguiFlow
ignores it: PenguiFlow's own project generator writes `ordering` and `disallow`, which it
never read, so refusing them would break programs that run on 3.11.
"""

from __future__ import annotations

import difflib
import json
import logging
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from penguiflow.errors import ConfigurationError, PenguiFlowError

from ._actions import SPECIAL_NODES, PlannerAction

__all__ = ["HintVerdict", "PlanningHints", "PlanningHintsWarning"]

logger = logging.getLogger("penguiflow.planner")

#: Where the ordering progress lives in `Trajectory.hint_state` (PenguiFlow's key, so a
#: trajectory saved by 3.11 resumes with its progress).
_ORDERING_KEY = "ordering_state"

_NAME_LISTS = ("ordering_hints", "sequential_only", "disallow_nodes", "prefer_nodes")
_KNOWN_KEYS = frozenset({*_NAME_LISTS, "parallel_groups", "max_parallel", "budget_hints"})


class PlanningHintsWarning(PenguiFlowError, UserWarning):
    """`planning_hints` holds a key the planner does not know; it is ignored."""


@dataclass(frozen=True, slots=True)
class HintVerdict:
    """What the hints say about one action, before it runs.

    - `error`: the action must not run; the loop records a step with this error (the model
      reads it and tries again), as PenguiFlow does;
    - `warning`: the action runs, but goes against a soft hint the model was already
      reminded of (an ordering hint); the loop logs it, nothing is recorded in the trajectory.
    """

    error: str | None = None
    warning: str | None = None

    @property
    def blocked(self) -> bool:
        return self.error is not None


@dataclass(frozen=True, slots=True)
class PlanningHints:
    """The parsed `planning_hints` (`PlanningHints.from_mapping`)."""

    ordering_hints: tuple[str, ...] = ()
    parallel_groups: tuple[tuple[str, ...], ...] = ()
    sequential_only: frozenset[str] = frozenset()
    disallow_nodes: frozenset[str] = frozenset()
    prefer_nodes: tuple[str, ...] = ()
    max_parallel: int | None = None
    budget_hints: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(
        cls, hints: Mapping[str, Any] | None, *, tool_names: Collection[str] | None = None
    ) -> PlanningHints:
        """Parse and check `planning_hints`. `tool_names`, when given, are the catalog's
        tools: hints naming another tool are logged as a warning (most likely a typo)."""
        if not hints:
            return cls()
        if not isinstance(hints, Mapping):
            raise ConfigurationError(
                f"planning_hints must be a mapping such as {{'disallow_nodes': ['tool']}}, "
                f"got {type(hints).__name__}"
            )
        for key in hints:
            if key not in _KNOWN_KEYS:
                warnings.warn(_unknown_key_message(key), PlanningHintsWarning, stacklevel=3)
        names = {key: _name_list(hints, key) for key in _NAME_LISTS}
        budget = hints.get("budget_hints")
        if budget is None:
            budget = {}
        if not isinstance(budget, Mapping) or not all(isinstance(k, str) for k in budget):
            raise ConfigurationError(
                "planning_hints['budget_hints'] must be a mapping with string keys, such as "
                f"{{'max_cost_usd': 0.5}}, got {type(budget).__name__}"
            )
        max_parallel = _max_parallel(hints.get("max_parallel"), "max_parallel")
        if max_parallel is None and "max_parallel" in budget:
            # PenguiFlow reads the limit from budget_hints when the top-level key is absent.
            max_parallel = _max_parallel(budget["max_parallel"], "budget_hints.max_parallel")
        parsed = cls(
            ordering_hints=tuple(names["ordering_hints"]),
            parallel_groups=_parallel_groups(hints.get("parallel_groups")),
            sequential_only=frozenset(names["sequential_only"]),
            disallow_nodes=frozenset(names["disallow_nodes"]),
            prefer_nodes=tuple(names["prefer_nodes"]),
            max_parallel=max_parallel,
            budget_hints=dict(budget),
        )
        if tool_names is not None:
            parsed._warn_unknown_tools(set(tool_names))
        return parsed

    @property
    def empty(self) -> bool:
        return self == PlanningHints()

    def _warn_unknown_tools(self, known: set[str]) -> None:
        named = {
            *self.ordering_hints,
            *self.sequential_only,
            *self.disallow_nodes,
            *self.prefer_nodes,
            *(name for group in self.parallel_groups for name in group),
        }
        unknown = sorted(named - known)
        if unknown:
            logger.warning(
                "planning_hints name tools the catalog does not have: %s (known tools: %s)",
                ", ".join(unknown),
                ", ".join(sorted(known)) or "none",
                extra={"unknown_tools": unknown},
            )

    def prompt_text(self) -> str | None:
        """The hints as lines for the system prompt; None when there are none."""
        lines: list[str] = []
        if self.disallow_nodes:
            lines.append(f"- Never call: {_listing(sorted(self.disallow_nodes))}.")
        if self.max_parallel is not None:
            lines.append(f"- A parallel plan may hold at most {self.max_parallel} calls.")
        if self.sequential_only:
            lines.append(
                "- Call these one at a time, never inside a parallel plan: "
                f"{_listing(sorted(self.sequential_only))}."
            )
        if self.ordering_hints:
            lines.append(
                f"- When you use these tools, use them in this order: "
                f"{' -> '.join(self.ordering_hints)}."
            )
        if self.parallel_groups:
            groups = "; ".join(f"[{_listing(group)}]" for group in self.parallel_groups)
            lines.append(f"- Tools that work well together in one parallel plan: {groups}.")
        if self.prefer_nodes:
            lines.append(f"- When several tools fit, prefer: {_listing(self.prefer_nodes)}.")
        if self.budget_hints:
            budget = json.dumps(dict(self.budget_hints), sort_keys=True, default=str)
            lines.append(f"- Budget to keep within: {budget}.")
        return "\n".join(lines) if lines else None

    def check(
        self,
        action: PlannerAction,
        hint_state: dict[str, Any],
        *,
        absolute_max_parallel: int,
    ) -> HintVerdict:
        """Whether `action` may run. Call it for every tool call and parallel plan (the
        `absolute_max_parallel` limit applies even without hints). `hint_state` is the run's
        `Trajectory.hint_state`; the ordering progress is kept there (JSON only)."""
        if action.is_parallel:
            return self._check_parallel(action, absolute_max_parallel)
        if action.next_node in SPECIAL_NODES:
            return HintVerdict()
        name = action.next_node
        if name in self.disallow_nodes:
            return HintVerdict(error=_disallowed(name))
        return self._check_order(name, hint_state)

    def _check_parallel(self, action: PlannerAction, absolute_max_parallel: int) -> HintVerdict:
        steps = action.args.get("steps")
        steps = steps if isinstance(steps, list) else []
        if len(steps) > absolute_max_parallel:
            logger.warning(
                "parallel_limit_absolute: a parallel plan of %d calls is over the planner's "
                "absolute_max_parallel=%d",
                len(steps),
                absolute_max_parallel,
                extra={"requested": len(steps), "limit": absolute_max_parallel},
            )
            return HintVerdict(error=_too_wide(len(steps), absolute_max_parallel))
        if self.max_parallel is not None and len(steps) > self.max_parallel:
            return HintVerdict(error=_too_wide(len(steps), self.max_parallel))
        names = [step.get("node") for step in steps if isinstance(step, Mapping)]
        for name in names:
            if isinstance(name, str) and name in self.sequential_only:
                return HintVerdict(
                    error=f"Tool '{name}' must be called on its own, not inside a parallel "
                    "plan. Call it as a single action, then plan the rest."
                )
        # PenguiFlow checks disallowed tools only for single calls; a parallel plan (or its
        # join tool) is no way around the rule.
        join = action.args.get("join")
        if isinstance(join, Mapping):
            names.append(join.get("node"))
        for name in names:
            if isinstance(name, str) and name in self.disallow_nodes:
                return HintVerdict(error=_disallowed(name))
        return HintVerdict()

    def _check_order(self, name: str, hint_state: dict[str, Any]) -> HintVerdict:
        if not self.ordering_hints or name not in self.ordering_hints:
            return HintVerdict()
        state = _ordering_state(hint_state)
        done = len(state["completed"])
        if done >= len(self.ordering_hints) or name == self.ordering_hints[done]:
            return HintVerdict()
        expected = self.ordering_hints[done]
        order = " -> ".join(self.ordering_hints)
        if not state["warned"]:
            # As in PenguiFlow: the first call out of order is turned back once, with a
            # reminder; the flag is cleared when the expected tool completes.
            state["warned"] = True
            return HintVerdict(
                error=f"Reminder: the preferred order of tools is {order}; the next one is "
                f"'{expected}', not '{name}'. Follow the order, or call '{name}' again if it "
                "really must come first."
            )
        return HintVerdict(warning=f"'{name}' ran before '{expected}' (preferred order: {order})")

    def record_progress(self, node_name: str, hint_state: dict[str, Any]) -> None:
        """Note that `node_name` completed (after a successful tool call, parallel branches
        included): when it is the next tool of the preferred order, the order moves on."""
        if not self.ordering_hints:
            return
        state = _ordering_state(hint_state)
        done = len(state["completed"])
        if done < len(self.ordering_hints) and node_name == self.ordering_hints[done]:
            state["completed"].append(node_name)
            state["warned"] = False


def _ordering_state(hint_state: dict[str, Any]) -> dict[str, Any]:
    state = hint_state.get(_ORDERING_KEY)
    if not isinstance(state, dict):
        state = hint_state[_ORDERING_KEY] = {}
    if not isinstance(state.get("completed"), list):
        state["completed"] = []
    state["warned"] = bool(state.get("warned", False))
    return state


def _unknown_key_message(key: object) -> str:
    close = difflib.get_close_matches(str(key), sorted(_KNOWN_KEYS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"planning_hints key {key!r} is not a planning hint and is ignored{hint} "
        f"(known keys: {', '.join(sorted(_KNOWN_KEYS))})"
    )


def _name_list(hints: Mapping[str, Any], key: str) -> list[str]:
    value = hints.get(key)
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise ConfigurationError(
            f"planning_hints[{key!r}] must be a list of tool names, such as ['search'], "
            f"got {type(value).__name__} {value!r}"
        )
    for item in value:
        if not isinstance(item, str):
            raise ConfigurationError(
                f"planning_hints[{key!r}] must hold tool names (strings), got "
                f"{type(item).__name__} {item!r}"
            )
    return list(value)


def _parallel_groups(value: Any) -> tuple[tuple[str, ...], ...]:
    if value is None:
        return ()
    groups = _name_lists_or_none(value)
    if groups is None:
        raise ConfigurationError(
            "planning_hints['parallel_groups'] must be a list of lists of tool names, such as "
            f"[['search', 'lookup']], got {value!r}"
        )
    return groups


def _name_lists_or_none(value: Any) -> tuple[tuple[str, ...], ...] | None:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return None
    groups: list[tuple[str, ...]] = []
    for group in value:
        if isinstance(group, str | bytes) or not isinstance(group, Sequence):
            return None
        if not all(isinstance(name, str) for name in group):
            return None
        groups.append(tuple(group))
    return tuple(groups)


def _max_parallel(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"planning_hints[{where!r}] must be a whole number of calls (0 forbids parallel "
            f"plans), got {value!r}"
        )
    return value


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names)


def _disallowed(name: str) -> str:
    return (
        f"Tool '{name}' is not allowed in this run (planning hints). Choose another tool or "
        "answer with what you have."
    )


def _too_wide(requested: int, limit: int) -> str:
    return (
        f"This parallel plan has {requested} calls; at most {limit} may run at once. Split it "
        "into smaller plans or single calls."
    )
