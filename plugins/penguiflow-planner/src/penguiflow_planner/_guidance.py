"""Adaptive guidance: targeted instructions added to the system prompt when the run's own
history shows the model repeating a mistake.

The loop records each mistake (`GuidanceTracker.record`); the second time the same mistake
happens (`threshold`), the tracker adds one line that says precisely what to do instead: the
valid tool names for a misnamed tool, the tool and the field for rejected arguments, the JSON
shape for unreadable replies, where the answer goes for an empty finish. The loop emits one
`guidance_added` event per new line and puts `lines()` in the system prompt's `guidance`
section.

PenguiFlow 3.11 counts some failures across runs of one planner ("tiered guidance"); ours
counts within a run only, so one user's confused run never changes another user's prompt. The
state is plain JSON kept in the trajectory's metadata, so a paused run resumes with its
guidance. Lines are deduplicated (one per mistake) and bounded (`max_lines`): the first lines
stay, so the prompt does not churn from step to step.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

from penguiflow.errors import ConfigurationError

from .prompts import PromptTemplates

__all__ = ["GuidanceKind", "GuidanceTracker"]

GuidanceKind: TypeAlias = Literal["unknown_tool", "invalid_args", "unparsable", "missing_answer"]
"""A mistake the tracker counts: a `next_node` that is no tool, arguments a tool rejected, a
reply that is no JSON action, a `final_response` without an answer."""

_KINDS = ("unknown_tool", "invalid_args", "unparsable", "missing_answer")

#: characters of an error's text quoted in a line
_DETAIL_CHARS = 200
#: valid names listed in a line (a catalog can be large; the closest matches come first)
_MAX_NAMES = 20


def _clip(text: str, limit: int = _DETAIL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class GuidanceTracker:
    """Counts the run's mistakes in `state` (the run's
    `trajectory.metadata.setdefault("guidance", {})`, JSON, kept across a pause) and turns a
    repeated one into a line of guidance.

    `record(...)` returns the lines it newly adds; `lines()` all of them, at most `max_lines`.
    `threshold` is how many times a mistake happens before its line is added."""

    def __init__(
        self,
        state: dict[str, Any],
        *,
        max_lines: int = 4,
        threshold: int = 2,
        templates: PromptTemplates | None = None,
    ) -> None:
        if max_lines < 0:
            raise ConfigurationError(f"max_lines must be >= 0 (got {max_lines})")
        if threshold < 1:
            raise ConfigurationError(f"threshold must be >= 1 (got {threshold})")
        self._state = state
        self._max_lines = max_lines
        self._threshold = threshold
        self._templates = templates or PromptTemplates()
        # A state restored from JSON holds these as plain dicts and lists already.
        state.setdefault("counts", {})
        state.setdefault("lines", [])
        state.setdefault("keys", [])
        state.setdefault("unknown_names", [])
        state.setdefault("dropped", 0)

    def lines(self) -> list[str]:
        """The guidance lines added so far, oldest first."""
        return list(self._state["lines"])

    @property
    def dropped(self) -> int:
        """Lines not added because `max_lines` was reached."""
        return int(self._state["dropped"])

    def record(
        self,
        *,
        kind: Literal["unknown_tool", "invalid_args", "unparsable", "missing_answer"],
        tool: str | None,
        detail: str,
        valid: Sequence[str] | None = None,
    ) -> list[str]:
        """Count one mistake; the lines this adds (none, or one).

        `tool` is the name the model gave (`unknown_tool`) or the tool whose arguments were
        rejected (`invalid_args`); `detail` the error's text; `valid` the names the model may
        use (`unknown_tool`: the visible tools and opcodes) or the fields of the tool's
        arguments (`invalid_args`)."""
        if kind not in _KINDS:
            raise ConfigurationError(f"unknown guidance kind {kind!r}; the kinds are {_KINDS}")
        # Arguments are counted per tool; the other mistakes per kind, whatever the name or
        # text (a model that invents a different tool name each time still needs the list).
        key = f"{kind}:{tool}" if kind == "invalid_args" else kind
        counts: dict[str, int] = self._state["counts"]
        counts[key] = int(counts.get(key, 0)) + 1
        if kind == "unknown_tool" and tool and tool not in self._state["unknown_names"]:
            self._state["unknown_names"].append(tool)
        if counts[key] < self._threshold or key in self._state["keys"]:
            return []
        if len(self._state["lines"]) >= self._max_lines:
            self._state["dropped"] = self.dropped + 1
            self._state["keys"].append(key)  # counted once, not on every later mistake
            return []
        line = self._line(kind, tool, detail, list(valid or ()))
        self._state["keys"].append(key)
        if line in self._state["lines"]:
            return []
        self._state["lines"].append(line)
        return [line]

    def _line(self, kind: GuidanceKind, tool: str | None, detail: str, valid: list[str]) -> str:
        render = self._templates.render
        if kind == "unknown_tool":
            names: list[str] = self._state["unknown_names"]
            close = difflib.get_close_matches(tool or "", valid, n=1) if valid else []
            suggestion = f" Did you mean {close[0]!r}?" if close else ""
            shown = close + [name for name in valid if name not in close]
            listed = ", ".join(shown[:_MAX_NAMES])
            if len(shown) > _MAX_NAMES:
                listed += f" (and {len(shown) - _MAX_NAMES} more in the tool list)"
            return render(
                "guidance_unknown_tool",
                names=", ".join(repr(n) for n in names) or "(unnamed)",
                valid=listed or "the names in the tool list",
                suggestion=suggestion,
            )
        if kind == "invalid_args":
            fields = f" ({', '.join(valid)})" if valid else ""
            return render(
                "guidance_invalid_args",
                tool=repr(tool or "the tool"),
                detail=_clip(detail),
                fields=fields,
            )
        if kind == "unparsable":
            return render("guidance_unparsable", detail=_clip(detail))
        return render("guidance_missing_answer")
