"""`EchoConnector`: a connector with two tools, to show the shape of one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from penguiflow.connectors import ToolResult
from penguiflow.errors import ConfigurationError, UnknownNameError

__all__ = ["EchoConnector", "EchoTool"]


@dataclass(frozen=True)
class EchoTool:
    name: str
    description: str


class EchoConnector:
    """Tools `echo` (returns the text) and `reverse` (returns it reversed)."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name

    async def list_tools(self) -> Sequence[EchoTool]:
        return [
            EchoTool("echo", "Return the `text` argument unchanged."),
            EchoTool("reverse", "Return the `text` argument reversed."),
        ]

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Every connector answers a `ToolResult`: text here; JSON would go in `structured`."""
        text = arguments.get("text")
        if not isinstance(text, str):
            raise ConfigurationError(f"tool {self.name}.{tool} needs a string argument 'text'")
        if tool == "echo":
            return ToolResult(text=text)
        if tool == "reverse":
            return ToolResult(text=text[::-1])
        raise UnknownNameError(
            f"connector {self.name!r} has no tool {tool!r}; it has: echo, reverse"
        )
