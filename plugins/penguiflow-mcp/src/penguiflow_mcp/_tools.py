"""A tool as an MCP server lists it, with what its annotations say about its effects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["MCPTool", "task_only_message", "tool_from_listing"]


@dataclass(frozen=True, slots=True)
class MCPTool:
    """A tool as the server lists it (`name` is the server's own name for it).

    The hints come from the tool's MCP annotations (`readOnlyHint`, `destructiveHint`,
    `idempotentHint`, `openWorldHint`); None means the server did not say. They are hints
    from the server, used to describe the tool and to decide whether a call interrupted by
    a crash may be sent again, never as a security boundary."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    title: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None
    #: `execution.taskSupport`: "required" tools can only be called as MCP tasks, which this
    #: connector does not do (see `MCPConnector.tool_specs`); "optional" ones are called
    #: normally
    task_support: str | None = None

    @property
    def retry_safe(self) -> bool:
        """Whether running the call twice does no harm (read-only or idempotent)."""
        return bool(self.read_only or self.idempotent)

    @property
    def side_effects(self) -> Literal["read", "write", "external"]:
        """The catalog's `side_effects`: "read" for a read-only tool, "write" for one the
        server marks as changing things, "external" when it says nothing."""
        if self.read_only:
            return "read"
        if self.read_only is False or self.destructive is not None or self.idempotent:
            return "write"
        return "external"

    @property
    def safety_notes(self) -> str | None:
        if self.read_only:
            return None
        if self.destructive:
            return (
                "destructive: the server says this tool may delete or overwrite data; "
                "call it only when the user asked for that"
            )
        if self.destructive is False:
            return "additive: the server says this tool changes data but does not delete any"
        return None


def tool_from_listing(tool: Any) -> MCPTool:
    hints = tool.annotations
    # The spec's defaults (destructiveHint true, idempotentHint false) apply only to tools
    # that declare annotations; a tool with none is left as "external", unknown.
    return MCPTool(
        name=tool.name,
        description=tool.description or tool.title or tool.name,
        input_schema=dict(tool.input_schema or {"type": "object"}),
        output_schema=dict(tool.output_schema) if tool.output_schema else None,
        title=tool.title or (hints.title if hints is not None else None),
        read_only=hints.read_only_hint if hints is not None else None,
        destructive=hints.destructive_hint if hints is not None else None,
        idempotent=hints.idempotent_hint if hints is not None else None,
        open_world=hints.open_world_hint if hints is not None else None,
        task_support=getattr(getattr(tool, "execution", None), "task_support", None),
    )


def task_only_message(server: str, tools: list[str]) -> str:
    return (
        f"MCP server {server!r}: {', '.join(tools)} can only be called as MCP tasks "
        "(execution.taskSupport: required), and the MCP SDK in use (mcp 2.x) has no client "
        "support for task-augmented calls (tasks/get, tasks/result), so they are not offered"
    )
