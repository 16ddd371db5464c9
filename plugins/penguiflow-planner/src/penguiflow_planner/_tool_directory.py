"""Prompt texts of tool search: how to discover tools, the tools a search suggests for the
user's request (`ToolHintsConfig`), and the grouped directory of the run's tools
(`ToolDirectoryConfig`).

Grouping follows PenguiFlow: the configured groups first, in their order, each taking the
tools that match any of its rules (names, name patterns, namespaces, tags) and that no earlier
group took; then, with `include_default_groups`, one group per namespace (the part of a name
before its first dot; names without one form the `core` group, listed first) for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from penguiflow.catalog import NodeSpec

from ._tool_config import ToolDirectoryConfig, ToolGroupConfig
from ._tool_index import SearchHit

__all__ = ["DirectoryGroup", "directory_groups", "directory_text", "discovery_text", "hints_text"]

_CORE = "core"
#: A description is cut to this many characters in hints (the full text is one tool_get away).
_DESC_CHARS = 160


def discovery_text(*, has_get: bool) -> str:
    """How the model finds tools that are not in its list."""
    lines = [
        "Finding more tools:",
        "- Your tool list is not complete. When no listed tool fits, call tool_search with a "
        "few keywords describing the capability you need.",
    ]
    if has_get:
        lines.append("- tool_get shows a found tool's arguments and examples.")
    lines.append(
        "- You may call a tool that tool_search returned by its name, even though it is not "
        "in your list: calling it adds it. Only tools allowed for this request are found."
    )
    return "\n".join(lines)


def hints_text(hits: Sequence[SearchHit], query: str) -> str | None:
    """The tools a search suggests for the user's request, one line each."""
    if not hits:
        return None
    about = f" for {query.strip()!r}" if query.strip() else ""
    lines = [f"Tools that look relevant{about} (call one by its name):"]
    for hit in hits:
        desc = " ".join(hit.description.split())
        if len(desc) > _DESC_CHARS:
            desc = desc[: _DESC_CHARS - 3].rstrip() + "..."
        lines.append(f"- {hit.name}: {desc}" if desc else f"- {hit.name}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class DirectoryGroup:
    """One group of the directory: its name, label parts, tool count and previewed tools."""

    name: str
    title: str | None
    trigger: str | None
    tool_count: int | None
    tools: list[str]


def _namespace(name: str) -> str:
    return name.split(".", 1)[0] if "." in name else _CORE


def _matches(spec: NodeSpec, group: ToolGroupConfig) -> bool:
    return (
        spec.name in group.tool_names
        or any(fnmatchcase(spec.name, pattern) for pattern in group.match_name_patterns)
        or _namespace(spec.name) in group.match_namespaces
        or bool(set(group.match_tags) & set(spec.tags))
    )


def directory_groups(
    specs: Sequence[NodeSpec], config: ToolDirectoryConfig
) -> list[DirectoryGroup]:
    """The groups of `specs` (see the module's docstring), at most `config.max_groups`."""
    preview = max(config.max_tools_per_group, 0)
    remaining = list(specs)
    groups: list[DirectoryGroup] = []
    for group in config.groups:
        taken = [spec for spec in remaining if _matches(spec, group)]
        if not taken:
            continue
        taken_names = {spec.name for spec in taken}
        remaining = [spec for spec in remaining if spec.name not in taken_names]
        names = sorted((spec.name for spec in taken), key=lambda n: (len(n), n))
        groups.append(
            DirectoryGroup(
                group.name,
                title=group.title,
                trigger=group.trigger,
                tool_count=len(names) if config.include_tool_counts else None,
                tools=names[:preview],
            )
        )
    if config.include_default_groups and remaining:
        by_namespace: dict[str, list[str]] = {}
        for spec in remaining:
            by_namespace.setdefault(_namespace(spec.name), []).append(spec.name)
        for namespace in sorted(by_namespace, key=lambda ns: (ns != _CORE, ns)):
            names = sorted(by_namespace[namespace])
            groups.append(
                DirectoryGroup(
                    namespace,
                    title=None,
                    trigger="tools without a namespace"
                    if namespace == _CORE
                    else f"the {namespace} tools",
                    tool_count=len(names) if config.include_tool_counts else None,
                    tools=names[:preview],
                )
            )
    return groups[: max(config.max_groups, 1)]


def directory_text(
    specs: Sequence[NodeSpec], config: ToolDirectoryConfig, *, has_search: bool
) -> tuple[str | None, int]:
    """The directory as prompt text (None when there is nothing to list), and the number of
    groups it shows."""
    groups = directory_groups(specs, config)
    if not groups:
        return None, 0
    how = " (find one with tool_search, then call it by name)" if has_search else ""
    lines = [f"Tool directory, by group{how}:"]
    for group in groups:
        label = [part for part in (group.title, group.trigger) if part and part != group.name]
        if group.tool_count is not None:
            label.append(f"{group.tool_count} tool{'s' if group.tool_count != 1 else ''}")
        lines.append(f"- {group.name}" + (f" ({'; '.join(label)})" if label else ""))
        if group.tools:
            lines.append(f"  for example: {', '.join(group.tools)}")
    return "\n".join(lines), len(groups)
