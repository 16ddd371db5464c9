"""U+0000 in stored JSON: PostgreSQL's `jsonb` refuses it, so it is escaped, reversibly.

`jsonb` cannot hold the character U+0000 (NUL) in any string ("unsupported Unicode escape
sequence"), yet model and tool output sometimes carries one; refusing it would lose the
update, the task or the event that holds it. Every string of a value (keys too) that holds a
NUL, or starts with the escape mark, is written as the mark followed by its text with NUL
as mark + U+E002 and the mark itself as mark + U+E001. The mark is U+E000, a private-use
character: a string that does not start with it is stored and read as it is, so data without
NUL is untouched, and reading unescapes exactly what writing escaped.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["escape_nul", "needs_unescape", "unescape_nul"]

_MARK = "\ue000"
_PAIRS = re.compile("\ue000([\ue001\ue002])")


def _needs_escape(text: str) -> bool:
    return "\x00" in text or text.startswith(_MARK)


def _escape_text(text: str) -> str:
    return _MARK + text.replace(_MARK, "\ue000\ue001").replace("\x00", "\ue000\ue002")


def _unescape_text(text: str) -> str:
    body = text[1:]
    return _PAIRS.sub(lambda m: _MARK if m.group(1) == "\ue001" else "\x00", body)


def escape_nul(value: Any) -> Any:
    """`value` with every string that needs it escaped (a new container where one changed)."""
    if isinstance(value, str):
        return _escape_text(value) if _needs_escape(value) else value
    if isinstance(value, dict):
        return {escape_nul(key): escape_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape_nul(item) for item in value]
    if isinstance(value, tuple):
        return tuple(escape_nul(item) for item in value)
    return value


def needs_unescape(raw: str) -> bool:
    """Whether JSON text read back may hold escaped strings (cheap check before a walk)."""
    return _MARK in raw or "\\ue000" in raw


def unescape_nul(value: Any) -> Any:
    """What `escape_nul` was given."""
    if isinstance(value, str):
        return _unescape_text(value) if value.startswith(_MARK) else value
    if isinstance(value, dict):
        return {unescape_nul(key): unescape_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unescape_nul(item) for item in value]
    return value
