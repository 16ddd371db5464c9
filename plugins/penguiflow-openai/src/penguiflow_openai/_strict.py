"""OpenAI's strict structured outputs: rewriting a schema into the strict subset, and a reply
to the rewritten schema back into a reply to the original one.

Strict mode wants every object to list all its properties as required and to allow no
others, and it refuses `default`. A Pydantic model with optional fields is rewritten: each
optional property becomes required but nullable, and a `null` the model then sends for a
property whose own schema does not allow null is removed from the reply, so the field's
default applies as if the model had left it out. Schemas strict mode cannot express (open
mappings, `patternProperties`, `allOf`, a root that is not an object) are sent as they are
with `strict: false`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from penguiflow.errors import PenguiFlowError

__all__ = ["strict_reply", "strict_schema"]

#: Keywords strict mode refuses and that only document the schema: dropped when rewriting.
_DROPPED = ("default",)


class _NotStrict(PenguiFlowError):
    """The schema uses something strict mode cannot express (internal signal)."""


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """`schema` rewritten into OpenAI's strict subset, or None when that is not possible."""
    if schema.get("type") != "object" and "properties" not in schema:
        return None  # the API wants an object at the root of a strict schema
    try:
        rewritten = _rewrite(schema)
    except _NotStrict:
        return None
    assert isinstance(rewritten, dict)
    return rewritten


def _rewrite(node: Any) -> Any:
    if isinstance(node, list):
        return [_rewrite(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    if "patternProperties" in node or "allOf" in node:
        raise _NotStrict
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key in ("properties", "$defs", "definitions"):
            out[key] = {name: _rewrite(child) for name, child in value.items()}
        elif key == "oneOf":
            # strict mode has anyOf only; a union's branches are alternatives either way
            out["anyOf"] = _rewrite(value)
        elif key in ("items", "anyOf", "additionalProperties", "prefixItems"):
            out[key] = _rewrite(value)
        else:
            out[key] = value
    is_object = node.get("type") == "object" or "properties" in node
    if is_object:
        extra = node.get("additionalProperties")
        properties: dict[str, Any] = out.get("properties", {})
        if extra not in (None, False) or not properties:
            raise _NotStrict  # an open mapping (dict[str, X]): no fixed property list
        required = set(node.get("required", ()))
        for name in properties:
            if name not in required:
                properties[name] = _nullable(properties[name])
        out["properties"] = properties
        out["required"] = list(properties)
        out["additionalProperties"] = False
    return out


def _nullable(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str) and "enum" not in schema:
        return {**schema, "type": [kind, "null"]} if kind != "null" else dict(schema)
    if isinstance(kind, list):
        return {**schema, "type": kind if "null" in kind else [*kind, "null"]}
    if isinstance(schema.get("anyOf"), list):
        branches = list(schema["anyOf"])
        if {"type": "null"} not in branches:
            branches.append({"type": "null"})
        return {**schema, "anyOf": branches}
    return {"anyOf": [dict(schema), {"type": "null"}]}


def strict_reply(text: str, schema: Mapping[str, Any]) -> str:
    """A reply to `strict_schema(schema)` as a reply to `schema`: a `null` for an optional
    property that does not itself allow null is removed. Text that is not JSON is returned
    unchanged, for validation to report."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return json.dumps(_unstrict(value, schema, schema))


def _unstrict(value: Any, schema: Any, root: Mapping[str, Any]) -> Any:
    schema = _resolve(schema, root)
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, dict) and isinstance(schema.get("properties"), Mapping):
        properties = schema["properties"]
        required = set(schema.get("required", ()))
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = properties.get(key)
            if item is None and key not in required and not _accepts_null(child, root):
                continue  # the strict rewrite made it nullable; "left out" is what it meant
            out[key] = _unstrict(item, child, root) if child is not None else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_unstrict(item, schema["items"], root) for item in value]
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, ()):
            resolved = _resolve(branch, root)
            if _branch_fits(value, resolved):
                return _unstrict(value, resolved, root)
    return value


def _branch_fits(value: Any, schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return False
    if isinstance(value, dict):
        properties = schema.get("properties")
        return isinstance(properties, Mapping) and set(value) <= set(properties)
    return isinstance(value, list) and "items" in schema


def _resolve(schema: Any, root: Mapping[str, Any]) -> Any:
    seen = 0
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and seen < 32:
        ref: str = schema["$ref"]
        if not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        if target is None:
            return schema
        schema, seen = target, seen + 1
    return schema


def _accepts_null(schema: Any, root: Mapping[str, Any]) -> bool:
    schema = _resolve(schema, root)
    if not isinstance(schema, Mapping):
        return True
    kind = schema.get("type")
    if kind is not None:
        return kind == "null" or (isinstance(kind, list) and "null" in kind)
    branches = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    if branches:
        return any(_accepts_null(branch, root) for branch in branches)
    if "enum" in schema:
        return None in schema["enum"]
    if "const" in schema:
        return schema["const"] is None
    return "properties" not in schema and "items" not in schema
