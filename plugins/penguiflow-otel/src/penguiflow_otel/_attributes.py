"""Event attributes as OpenTelemetry attribute values.

OTel attributes are flat: a key maps to a str, bool, int or float, or a homogeneous sequence
of one of those. PenguiFlow attributes may hold small structures (a FlowEvent's `extra`, a
list of finish reasons); they are flattened with dotted keys, and anything else becomes its
text, cut to a bounded length so one odd value cannot blow up a span.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

__all__ = ["MAX_DEPTH", "MAX_TEXT", "flatten"]

#: how deep mappings are flattened before the rest becomes text
MAX_DEPTH = 4
#: the longest text value kept (longer ones end with an ellipsis)
MAX_TEXT = 4096


def _text(value: Any) -> str:
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:  # a value whose repr raises must not lose the whole span
        text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _sequence(items: list[Any] | tuple[Any, ...]) -> AttributeValue:
    """A homogeneous tuple of primitives, else the items' texts (OTel refuses mixed lists)."""
    if not items:
        return ()
    kinds = {type(item) for item in items}
    if len(kinds) == 1 and next(iter(kinds)) in (str, bool, int, float):
        if next(iter(kinds)) is str:
            return tuple(_text(item) for item in items)
        return tuple(items)
    if kinds <= {int, float}:  # ints and floats mixed: all floats
        return tuple(float(item) for item in items)
    return tuple(_text(item) for item in items)


def _entries(key: str, value: Any, depth: int) -> Iterator[tuple[str, AttributeValue]]:
    if value is None:
        return
    if isinstance(value, bool | int | float):
        yield key, value
    elif isinstance(value, str):
        yield key, _text(value)
    elif isinstance(value, list | tuple):
        yield key, _sequence(value)
    elif isinstance(value, Mapping) and depth < MAX_DEPTH:
        for sub_key, sub_value in value.items():
            yield from _entries(f"{key}.{sub_key}", sub_value, depth + 1)
    else:
        yield key, _text(value)


def flatten(attributes: Mapping[str, Any], prefix: str = "") -> dict[str, AttributeValue]:
    """`attributes` as OTel attributes: None values left out, mappings flattened into
    `key.sub_key`, sequences made homogeneous, anything else as bounded text.

    A key that is already namespaced (it holds a dot: `gen_ai.request.model`,
    `error.type`) is kept as it is, so semantic-convention attributes stay recognisable;
    a plain key (`node_name`, `status`) gets `prefix` (e.g. "penguiflow.")."""
    flat: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        name = key if "." in key else prefix + key
        # The common case inline (this runs for every event): a short scalar.
        kind = type(value)
        if kind is str:
            flat[name] = value if len(value) <= MAX_TEXT else _text(value)
        elif kind is int or kind is float or kind is bool:
            flat[name] = value
        elif value is not None:
            flat.update(_entries(name, value, 0))
    return flat
