"""Which tools a planner may use: a fixed `ToolPolicy` applied when the planner is built, and a
`ToolVisibilityPolicy` consulted per call (PenguiFlow 3.11's names and semantics).

A `ToolPolicy` removes tools from the planner for good: a removed tool is neither shown to the
model nor callable. A visibility policy narrows what one `run()`/`resume()` may see, for a
tenant or a user, without building another planner; it can only narrow (see `RunCatalog`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from penguiflow.catalog import NodeSpec

__all__ = [
    "ToolPolicy",
    "ToolVisibilityPolicy",
    "apply_tool_policy",
    "intersect_policies",
]

logger = logging.getLogger("penguiflow.planner")

#: Names the planner adds itself when tool search is on: a policy may name them although the
#: user's catalog does not hold them, so naming them is not a typo worth a warning.
_BUILTIN_TOOL_NAMES = frozenset({"tool_search", "tool_get"})


class ToolPolicy(BaseModel):
    """Which tools of the catalog the planner may use.

    - `allowed_tools`: when set, only these names are allowed (None: no allow-list);
    - `denied_tools`: these names are never allowed, whatever else says;
    - `require_tags`: a tool must carry every one of these tags.
    """

    allowed_tools: set[str] | None = Field(
        default=None, description="When set, the only tool names allowed."
    )
    denied_tools: set[str] = Field(
        default_factory=set, description="Tool names that are never allowed."
    )
    require_tags: set[str] = Field(
        default_factory=set, description="Tags a tool must all carry to be allowed."
    )

    def is_allowed(self, node_name: str, node_tags: Mapping[str, Any] | Sequence[str]) -> bool:
        """Whether the tool `node_name`, carrying `node_tags` (a sequence of tags, or a
        mapping whose keys are the tags), passes this policy."""
        if node_name in self.denied_tools:
            return False
        if self.allowed_tools is not None and node_name not in self.allowed_tools:
            return False
        return self.require_tags.issubset(set(node_tags))


@runtime_checkable
class ToolVisibilityPolicy(Protocol):
    """Chooses, for one call of `run()`/`resume()`, which tools the model may see and call.

    `visible_tools` receives the planner's tools (after its `ToolPolicy`) and the call's
    `tool_context`, and returns the ones to keep. It can only narrow: anything it returns that
    is not among `specs` is ignored."""

    def visible_tools(
        self, specs: Sequence[NodeSpec], tool_context: Mapping[str, Any]
    ) -> Sequence[NodeSpec]: ...


def apply_tool_policy(specs: Sequence[NodeSpec], policy: ToolPolicy | None) -> list[NodeSpec]:
    """The specs `policy` allows, in catalog order (all of them when `policy` is None).

    As in PenguiFlow, a policy that removes every tool is not an error (the model can still
    answer without tools): it is logged as a warning (`planner_tool_policy_empty`). A policy
    naming tools the catalog does not have is logged as a warning too, since that is most
    often a typo that silently widens (`denied_tools`) or empties (`allowed_tools`) the set."""
    if policy is None:
        return list(specs)
    kept: list[NodeSpec] = []
    removed: list[str] = []
    for spec in specs:
        if policy.is_allowed(spec.name, spec.tags):
            kept.append(spec)
        else:
            removed.append(spec.name)
    if removed:
        logger.info(
            "planner_tool_policy_filtered",
            extra={"removed": removed, "original_count": len(specs), "filtered_count": len(kept)},
        )
    known = {spec.name for spec in specs} | _BUILTIN_TOOL_NAMES
    unknown = sorted(_names(policy.allowed_tools) - known) + sorted(policy.denied_tools - known)
    if unknown:
        logger.warning(
            "planner_tool_policy_unknown_tools: the tool policy names %s, which the catalog "
            "does not have (known tools: %s); check the spelling",
            ", ".join(repr(name) for name in unknown),
            ", ".join(sorted(spec.name for spec in specs)) or "none",
            extra={"unknown_tools": unknown},
        )
    if specs and not kept:
        logger.warning(
            "planner_tool_policy_empty: the tool policy removed all %d tools of the catalog; "
            "the planner can only answer without tools. Loosen allowed_tools/require_tags "
            "if that is not intended",
            len(specs),
            extra={"original_count": len(specs)},
        )
    return kept


def _names(names: Iterable[str] | None) -> set[str]:
    return set(names) if names is not None else set()


def intersect_policies(parent: ToolPolicy | None, child: ToolPolicy | None) -> ToolPolicy | None:
    """The policy of a fork that inherits its parent's (`fork(inherit_policy=True)`): a tool
    the fork may use passes both. Allowed tools are intersected (no allow-list on one side
    leaves the other's), denied tools and required tags are united."""
    if parent is None or child is None:
        return child if parent is None else parent
    if parent.allowed_tools is None or child.allowed_tools is None:
        allowed = child.allowed_tools if parent.allowed_tools is None else parent.allowed_tools
        allowed = set(allowed) if allowed is not None else None
    else:
        allowed = parent.allowed_tools & child.allowed_tools
    return ToolPolicy(
        allowed_tools=allowed,
        denied_tools=parent.denied_tools | child.denied_tools,
        require_tags=parent.require_tags | child.require_tags,
    )
