"""What a UTCP tool's answer becomes: a `penguiflow.connectors.ToolResult`.

UTCP's protocols answer a decoded value: HTTP gives the parsed JSON of a JSON response and
the text of any other. Text becomes `text`, JSON becomes `structured`. UTCP has no content
blocks, binary parts or resource links, so `references` and `links` stay empty; a long answer
is shortened by the planner's own observation limits, not here.
"""

from __future__ import annotations

import json
from typing import Any

from penguiflow.connectors import ToolResult
from penguiflow.errors import PenguiFlowError

__all__ = ["BinaryAnswerError", "tool_result"]


class BinaryAnswerError(PenguiFlowError, ValueError):
    """A tool answered binary data, which a `ToolResult` cannot carry inline (the connector
    reports it as the tool's error)."""


def tool_result(value: Any) -> ToolResult:
    """`value` (what UTCP's client returned for a call) as a `ToolResult`.

    Raises `ValueError` for bytes that are not UTF-8 text: binary data has no place in a
    prompt, and UTCP gives no MIME type to keep it by."""
    if value is None:
        return ToolResult()
    if isinstance(value, bytes | bytearray):
        try:
            return ToolResult(text=bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            raise BinaryAnswerError(
                f"the tool answered {len(value)} bytes of binary data, which a ToolResult "
                "cannot carry inline; have the tool answer JSON or text (a URL to the data, "
                "for instance)"
            ) from None
    if isinstance(value, str):
        return ToolResult(text=value)
    # Plain JSON from here on (a protocol may hand back models or other objects): what the
    # model is shown must survive `model_dump(mode="json")` unchanged.
    return ToolResult(structured=json.loads(json.dumps(value, ensure_ascii=False, default=str)))
