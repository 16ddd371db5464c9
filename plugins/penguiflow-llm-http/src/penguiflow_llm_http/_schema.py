"""Structured output: schemas of response formats, the modes that enforce them, and the
prompt texts that ask a model for a schema or show it why a reply was refused.

A mode is how the request asks for JSON: `json_schema` (the provider enforces the schema),
`json_object` (the provider guarantees JSON, the schema is in the prompt), or `prompt` (the
schema is only in the prompt). A model profile lists the modes a model is tried with, best
first; a mode the provider refuses is dropped for that model and the next one used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel

from penguiflow.llm import LLMConfigurationError, ResponseFormat

__all__ = [
    "SCHEMA_MODES",
    "ModelProfile",
    "ProfileRegistry",
    "SchemaMode",
    "repair_instructions",
    "schema_instructions",
    "schema_name",
    "schema_of",
]

SchemaMode: TypeAlias = Literal["json_schema", "json_object", "prompt"]
SCHEMA_MODES: tuple[SchemaMode, ...] = ("json_schema", "json_object", "prompt")

#: At most this many validation errors are shown to the model in a repair request: more only
#: makes the prompt longer without helping the model fix the first ones.
_MAX_REPAIR_ERRORS = 20


def schema_of(response_format: ResponseFormat) -> dict[str, Any] | None:
    """The JSON schema of a response format (a Pydantic model or a schema mapping)."""
    if response_format is None:
        return None
    if isinstance(response_format, type) and issubclass(response_format, BaseModel):
        return response_format.model_json_schema()
    if isinstance(response_format, Mapping):
        return dict(response_format)
    raise LLMConfigurationError(
        f"response_format must be None, a Pydantic model class or a JSON schema mapping, got "
        f"{response_format!r}"
    )


def schema_name(response_format: ResponseFormat, schema: Mapping[str, Any]) -> str:
    """A short name for the schema, as providers want one (letters, digits, _ and -)."""
    if isinstance(response_format, type):
        raw = response_format.__name__
    else:
        raw = str(schema.get("title") or "response")
    cleaned = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in raw)
    return cleaned[:64] or "response"


def schema_instructions(schema: Mapping[str, Any]) -> str:
    """The system-prompt text that asks for JSON matching `schema` (modes json_object, prompt)."""
    return (
        "Reply with a single JSON value and nothing else (no prose, no code fences). "
        f"It must match this JSON schema:\n{json.dumps(schema, separators=(',', ':'))}"
    )


def repair_instructions(errors: Sequence[str], schema: Mapping[str, Any] | None) -> str:
    """The user message that shows the model why its reply was refused (the errors of
    `penguiflow.llm.validate_reply`) and asks for the JSON again."""
    listed = "\n".join(f"- {error}" for error in errors[:_MAX_REPAIR_ERRORS])
    text = f"Your previous reply was not accepted:\n{listed}\nReply again with only the JSON"
    if schema is not None:
        text += f", matching this schema:\n{json.dumps(schema, separators=(',', ':'))}"
    return text + "."


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What a family of models supports: the structured-output modes to try, best first."""

    name: str
    schema_modes: tuple[SchemaMode, ...] = SCHEMA_MODES
    #: model-name prefixes this profile applies to
    prefixes: tuple[str, ...] = ()
    #: the provider can return reasoning text separately (streamed to on_reasoning_chunk)
    reasoning: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [mode for mode in self.schema_modes if mode not in SCHEMA_MODES]
        if unknown or not self.schema_modes:
            raise LLMConfigurationError(
                f"profile {self.name!r}: schema_modes must be a non-empty sequence of "
                f"{', '.join(SCHEMA_MODES)}; got {list(self.schema_modes)}"
            )


class ProfileRegistry:
    """Profiles by name and by model-name prefix, with a default for unknown models."""

    def __init__(self, profiles: Sequence[ModelProfile], *, default: str) -> None:
        self._profiles: dict[str, ModelProfile] = {}
        for profile in profiles:
            self.register(profile)
        if default not in self._profiles:
            raise LLMConfigurationError(f"default profile {default!r} is not among the profiles")
        self._default = default

    def register(self, profile: ModelProfile) -> None:
        self._profiles[profile.name] = profile

    @property
    def names(self) -> list[str]:
        return sorted(self._profiles)

    def resolve(self, model: str, profile: str | ModelProfile | None = None) -> ModelProfile:
        """The profile named `profile`, else the one whose prefix matches `model` best, else
        the default. An unknown name is an error listing the known ones."""
        if isinstance(profile, ModelProfile):
            return profile
        if profile is not None:
            try:
                return self._profiles[profile]
            except KeyError:
                raise LLMConfigurationError(
                    f"unknown model profile {profile!r}; known profiles: {', '.join(self.names)}"
                    " (or pass a ModelProfile(...) of your own)"
                ) from None
        best: tuple[int, ModelProfile] | None = None
        for candidate in self._profiles.values():
            for prefix in candidate.prefixes:
                if model.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), candidate)
        return best[1] if best is not None else self._profiles[self._default]
