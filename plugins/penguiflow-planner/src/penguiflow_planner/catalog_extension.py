"""Adding tools to a planner that already exists (PenguiFlow 3.11's
`penguiflow.planner.catalog_extension`), for tools that appear after the planner was built:
a connector that came up later, the tools of a session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from penguiflow.catalog import NodeSpec
from penguiflow.errors import InvalidTypeError
from penguiflow.runtime import CircuitBreaker

from ._policies import apply_tool_policy
from ._tool_search import ToolSearch

if TYPE_CHECKING:
    from ._planner import ReactPlanner

__all__ = ["extend_tool_catalog"]


def extend_tool_catalog(planner: ReactPlanner, specs: Sequence[NodeSpec]) -> int:
    """Add `specs` to `planner`'s catalog; returns how many were added. A spec whose name
    the catalog already has is skipped (the first one stays), and the planner's `ToolPolicy`
    applies to the new ones as to the others. Runs that start afterwards see the new tools
    (in their prompt, their JSON schema and tool search); runs in progress keep theirs."""
    existing = {spec.name for spec in planner._settings.catalog}
    new: list[NodeSpec] = []
    for spec in specs:
        if not isinstance(spec, NodeSpec):
            raise InvalidTypeError(
                f"extend_tool_catalog takes NodeSpec objects (build them with build_catalog), "
                f"got {type(spec).__name__}"
            )
        if spec.name in existing:
            continue
        existing.add(spec.name)
        new.append(spec)
    if not new:
        return 0
    planner._settings.catalog = [*planner._settings.catalog, *new]
    allowed = apply_tool_policy(new, planner._tool_policy)
    planner._specs = [*planner._specs, *allowed]
    for spec in allowed:
        if spec.node is not None and spec.node.policy.circuit_breaker is not None:
            planner._breakers[spec.name] = CircuitBreaker(spec.node.policy.circuit_breaker)
    # A new index for the new catalog; the old one is closed with the planner (runs in
    # progress may still be searching it).
    planner._tool_search = ToolSearch.build(
        planner._tool_search.config,
        planner._specs,
        policy=planner._tool_policy,
    )
    planner._owned.append(planner._tool_search)
    return len(allowed)
