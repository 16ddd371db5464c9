"""Exact JSON for durable state stores: what is saved loads back equal, or is refused.

`json.dumps(value, default=str)` silently turns bytes, sets, datetimes and other objects into
strings, tuples into lists and integer keys into strings, so a paused planner run (or any
other state) resumes with values of other types than it saved. The durable stores (SQLite,
PostgreSQL) encode state with `dumps_exact` instead; a third-party store should too. It
accepts exactly what JSON holds (dicts with string keys, lists, strings, finite numbers,
booleans and None) and refuses anything else with an `InvalidTypeError` naming the path of
the first such value (`planner_state['pending']['args'][1]`) and how to store it.

Event payloads are not state: stores keep them as a log, where an unusual value is better
stored as its text than losing the event.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import InvalidTypeError

__all__ = ["dumps_exact", "first_unstorable"]

#: how to store what JSON cannot hold, by the type's name
_HINTS = {
    "bytes": "encode it as text first (e.g. base64.b64encode(value).decode())",
    "bytearray": "encode it as text first (e.g. base64.b64encode(value).decode())",
    "datetime": "save value.isoformat() and parse it back when loading",
    "date": "save value.isoformat() and parse it back when loading",
    "time": "save value.isoformat() and parse it back when loading",
    "tuple": "use a list (JSON has no tuples: it would load back as a list)",
    "set": "use a sorted list (JSON has no sets)",
    "frozenset": "use a sorted list (JSON has no sets)",
    "Decimal": "save str(value) (a float would lose digits)",
}
_DEFAULT_HINT = "convert it to JSON values (for a Pydantic model: model_dump(mode='json'))"


def first_unstorable(value: Any, path: str) -> tuple[str, str] | None:
    """The path of the first value under `value` that JSON cannot hold exactly, and why;
    `None` when everything can be stored and loads back equal.

    Subclasses of str, int, float, dict and list (a `str` enum, say) are stored as their
    JSON value and load back as the plain type, which compares equal."""
    return _check(value, path, set())


def _check(item: Any, where: str, ancestors: set[int]) -> tuple[str, str] | None:
    if item is None or isinstance(item, str | bool | int):
        return None
    if isinstance(item, float):
        if math.isfinite(item):
            return None
        return where, f"is {item!r}, not a finite number: JSON cannot hold it"
    if isinstance(item, dict | list):
        if id(item) in ancestors:
            return where, "contains itself, which JSON cannot hold"
        ancestors.add(id(item))
        try:
            if isinstance(item, list):
                for index, child in enumerate(item):
                    found = _check(child, f"{where}[{index}]", ancestors)
                    if found is not None:
                        return found
                return None
            for key, child in item.items():
                if not isinstance(key, str):
                    return where, (
                        f"has the {type(key).__name__} key {key!r}; JSON keys are strings "
                        "(it would load back as a string): use str keys"
                    )
                found = _check(child, f"{where}[{key!r}]", ancestors)
                if found is not None:
                    return found
            return None
        finally:
            ancestors.discard(id(item))
    kind = type(item).__name__
    return where, f"is of type {kind!r}, which JSON cannot hold; {_HINTS.get(kind, _DEFAULT_HINT)}"


def dumps_exact(value: Any, *, what: str, store: str) -> str:
    """`value` as JSON text, or `InvalidTypeError` naming the first value that would not load
    back as saved (its path under `what`, e.g. `planner_state['pending'][0]`).

    `store` names the store in the message (`"the sqlite state store"`)."""
    try:
        problem = first_unstorable(value, what)
    except RecursionError:
        problem = what, "is nested too deeply to store; flatten it"
    if problem is not None:
        where, why = problem
        raise InvalidTypeError(f"{store} cannot save {where}: it {why}")
    return json.dumps(value, allow_nan=False)
