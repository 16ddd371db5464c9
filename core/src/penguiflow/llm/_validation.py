"""Checking a model's reply (or a tool call's arguments) against the requested format.

Provider-neutral, so it lives in the kernel: the catalog checks tool arguments with it, and
the HTTP toolkit (`penguiflow-llm-http`) checks every reply with it before a repair round.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ._models import ResponseFormat

__all__ = ["extract_json", "validate_reply"]

_MAX_ERRORS = 20


def extract_json(text: str) -> str:
    """The JSON in a reply: without code fences, and from the first brace or bracket to the
    last one when the model wrapped it in prose."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0].strip()
    if stripped[:1] in ("{", "["):
        return stripped
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if not starts:
        return stripped
    start = min(starts)
    end = max(stripped.rfind("}"), stripped.rfind("]"))
    return stripped[start : end + 1] if end > start else stripped[start:]


def validate_reply(text: str, response_format: ResponseFormat) -> tuple[str, list[str]]:
    """`(json_text, [])` when the reply matches `response_format`, else `(text, errors)`.

    Errors are plain strings (location and message, never the offending input), safe to log
    and to show the model."""
    if response_format is None:
        return text, []
    candidate = extract_json(text)
    if isinstance(response_format, type) and issubclass(response_format, BaseModel):
        try:
            model = response_format.model_validate_json(candidate)
        except ValidationError as exc:
            return text, _pydantic_errors(exc)
        return model.model_dump_json(), []
    try:
        value = json.loads(candidate)
    except json.JSONDecodeError as exc:
        return text, [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
    errors = _schema_errors(value, response_format, "$")
    return (candidate, []) if not errors else (text, errors[:_MAX_ERRORS])


def _pydantic_errors(exc: ValidationError) -> list[str]:
    found = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"]) or "$"
        found.append(f"{location}: {error['msg']}")
    return found[:_MAX_ERRORS]


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _schema_errors(value: Any, schema: Mapping[str, Any], where: str) -> list[str]:
    """A subset of JSON Schema: type, enum, const, required, properties,
    additionalProperties: false, items. Enough to catch a reply of the wrong shape."""
    errors: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        allowed = tuple(t for name in names for t in _JSON_TYPES.get(name, ()))
        is_bool = isinstance(value, bool)
        if allowed and (not isinstance(value, allowed) or (is_bool and bool not in allowed)):
            return [f"{where}: expected {' or '.join(names)}, got {_json_type(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: must be one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: must be {schema['const']!r}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{where}.{key}: field required")
        for key, item in value.items():
            if key in properties:
                errors += _schema_errors(item, properties[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}.{key}: unexpected field")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            errors += _schema_errors(item, schema["items"], f"{where}[{index}]")
    return errors


def _json_type(value: Any) -> str:
    for name, types in _JSON_TYPES.items():
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, types):
            return name
    return type(value).__name__
