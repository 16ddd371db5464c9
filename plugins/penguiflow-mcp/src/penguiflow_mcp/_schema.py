"""Checking a tool's arguments against the whole JSON Schema its server declares.

A real validator (`jsonschema`, which the MCP SDK depends on too), so `pattern`, bounds,
`enum`, `oneOf`, `$ref`, formats and the rest are checked before anything is sent; the draft
is the one the schema names (`$schema`), 2020-12 when it names none, as MCP specifies.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["ArgumentChecker"]

logger = logging.getLogger("penguiflow.mcp")


class ArgumentChecker:
    """The validator of one tool's input schema, built once. A schema that is not valid JSON
    Schema is logged and left to the server to enforce (refusing every call to a tool
    because its server wrote a sloppy schema would make it unusable)."""

    def __init__(self, where: str, schema: Mapping[str, Any]) -> None:
        # Imported by name: jsonschema ships no type information (its stubs are a separate
        # package the type-check environments do not install), and this module is where its
        # untyped surface stops.
        jsonschema: Any = importlib.import_module("jsonschema")
        Draft202012Validator = jsonschema.Draft202012Validator
        SchemaError = jsonschema.SchemaError
        validators = jsonschema.validators

        self.where = where
        cls = validators.validator_for(dict(schema), default=Draft202012Validator)
        try:
            cls.check_schema(dict(schema))
        except SchemaError as exc:
            logger.warning(
                "%s declares an input schema that is not valid JSON Schema (%s); its "
                "arguments are sent unchecked and the server has to check them",
                where,
                exc.message,
            )
            self._validator: Any = None
            return
        self._validator = cls(dict(schema), format_checker=cls.FORMAT_CHECKER)

    def errors(self, arguments: Mapping[str, Any]) -> list[str]:
        """What is wrong with `arguments`, one `field: message` each (`(arguments)` for the
        object as a whole), in field order; empty when they fit."""
        if self._validator is None:
            return []
        found: dict[str, None] = {}  # ordered and without repeats
        errors = sorted(
            self._validator.iter_errors(dict(arguments)),
            key=lambda e: [str(p) for p in e.absolute_path],
        )
        for error in errors:
            for line in _describe(error):
                found[line] = None
        return list(found)


def _describe(error: Any) -> list[str]:
    """`field: message` lines for one validation error, naming the field itself for a
    missing or an unexpected property rather than the object that holds it."""
    path = [str(p) for p in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        return [
            f"{_field([*path, name])}: field required"
            for name in error.validator_value
            if name not in instance
        ]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        if not schema.get("patternProperties"):
            declared = schema.get("properties") or {}
            extra = [name for name in instance if name not in declared]
            if extra:
                return [f"{_field([*path, name])}: unexpected field" for name in extra]
    return [f"{_field(path)}: {error.message}"]


def _field(path: list[str]) -> str:
    return ".".join(path) if path else "(arguments)"
