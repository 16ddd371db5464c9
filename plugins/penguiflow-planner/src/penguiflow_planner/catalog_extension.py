"""Adding tools to a planner that already exists (PenguiFlow 3.11's
`penguiflow.planner.catalog_extension`), for tools that appear after the planner was built:
a connector that came up later, the tools of a session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from penguiflow.catalog import NodeSpec
from penguiflow.errors import ConfigurationError, InvalidTypeError
from penguiflow.runtime import CircuitBreaker

from ._policies import apply_tool_policy
from ._tool_search import ToolSearch

if TYPE_CHECKING:
    from ._planner import ReactPlanner

__all__ = ["extend_tool_catalog", "replace_tool_catalog"]


def extend_tool_catalog(planner: ReactPlanner, specs: Sequence[NodeSpec]) -> int:
    """Add `specs` to `planner`'s catalog; returns how many were added. A spec whose name
    the catalog already has is skipped (the first one stays), and the planner's `ToolPolicy`
    applies to the new ones as to the others. Runs that start afterwards see the new tools
    (in their prompt, their JSON schema and tool search), and so do runs in progress from
    their next step."""
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
    planner._catalog_generation += 1
    return len(allowed)


def replace_tool_catalog(
    planner: ReactPlanner, replaced: str | Iterable[str], specs: Sequence[NodeSpec]
) -> list[str]:
    """Swap tools of `planner` for `specs`: `replaced` is a namespace (`"github"` stands for
    every `github.*` tool, a connector's tools) or the exact names to take out. The
    planner's `ToolPolicy` applies to the new specs; returns the names it now offers of them.

    A new spec named like a tool that stays (not replaced) raises `ConfigurationError`
    before anything changes. Runs that start afterwards see the new catalog, and so do runs
    in progress from their next step (its prompt and the names the model may call; a
    parallel branch already running keeps its spec). Deferred tools a run has activated stay
    activated if they are still in the catalog."""
    if isinstance(replaced, str):
        prefix = f"{replaced.rstrip('.')}."

        def goes(name: str) -> bool:
            return name.startswith(prefix)

        what = f"the {prefix}* tools"
    else:
        names = set(replaced)

        def goes(name: str) -> bool:
            return name in names

        what = ", ".join(sorted(names)) or "no tools"
    new: dict[str, NodeSpec] = {}
    for spec in specs:
        if not isinstance(spec, NodeSpec):
            raise InvalidTypeError(
                f"replace_tools takes NodeSpec objects (e.g. from connector.tool_specs()), "
                f"got {type(spec).__name__}"
            )
        if spec.name in new:
            raise ConfigurationError(
                f"replace_tools got two tools named {spec.name!r}; pass each tool once"
            )
        new[spec.name] = spec
    kept = [spec for spec in planner._settings.catalog if not goes(spec.name)]
    clash = sorted(name for name in new if name in {spec.name for spec in kept})
    if clash:
        raise ConfigurationError(
            f"replacing {what}: the planner already has tools named {', '.join(clash)} that "
            "are not being replaced; rename the new tools (e.g. a connector's server name) "
            "or include those names in what is replaced"
        )
    added = list(new.values())
    allowed = apply_tool_policy(added, planner._tool_policy)
    planner._settings.catalog = [*kept, *added]
    planner._specs = [*(spec for spec in planner._specs if not goes(spec.name)), *allowed]
    for name in [name for name in planner._breakers if goes(name)]:
        del planner._breakers[name]
    for spec in allowed:
        if spec.node is not None and spec.node.policy.circuit_breaker is not None:
            planner._breakers[spec.name] = CircuitBreaker(spec.node.policy.circuit_breaker)
    for name in [name for name in planner._record_cache if goes(name)]:
        del planner._record_cache[name]
    planner._tool_search = ToolSearch.build(
        planner._tool_search.config,
        planner._specs,
        policy=planner._tool_policy,
    )
    planner._owned.append(planner._tool_search)
    # Runs in progress compare this with the generation they built their catalog from.
    planner._catalog_generation += 1
    return [spec.name for spec in allowed]
