"""Schemas of response formats, model profiles, and the prompt texts about schemas."""

from __future__ import annotations

import json

import pytest
from penguiflow_llm_http import (
    ModelProfile,
    ProfileRegistry,
    repair_instructions,
    schema_instructions,
    schema_name,
    schema_of,
)
from pydantic import BaseModel

from penguiflow.llm import LLMConfigurationError


class Point(BaseModel):
    x: int
    y: int


def test_profiles_resolve_by_name_prefix_or_default() -> None:
    registry = ProfileRegistry(
        [
            ModelProfile("a", prefixes=("m-",)),
            ModelProfile("a-long", prefixes=("m-large",)),
            ModelProfile("b", schema_modes=("prompt",)),
        ],
        default="b",
    )
    assert registry.resolve("m-small").name == "a"
    assert registry.resolve("m-large-2").name == "a-long"  # the longest prefix wins
    assert registry.resolve("other").name == "b"
    own = ModelProfile("own")
    assert registry.resolve("m-small", own) is own
    with pytest.raises(
        LLMConfigurationError, match="unknown model profile 'z'; known profiles: a, a-long, b"
    ):
        registry.resolve("m-large", "z")
    with pytest.raises(LLMConfigurationError, match="schema_modes"):
        ModelProfile("bad", schema_modes=("xml",))  # type: ignore[arg-type]
    with pytest.raises(LLMConfigurationError, match="default profile 'c'"):
        ProfileRegistry([ModelProfile("a")], default="c")


def test_schema_of_and_schema_name() -> None:
    schema = schema_of(Point)
    assert schema is not None and schema["required"] == ["x", "y"]
    assert schema_name(Point, schema) == "Point"
    assert schema_of(None) is None
    assert schema_name({"title": "my reply!"}, {"title": "my reply!"}) == "my_reply_"
    assert schema_name({}, {}) == "response"
    with pytest.raises(LLMConfigurationError, match="response_format must be None"):
        schema_of(42)  # type: ignore[arg-type]


def test_prompt_texts_carry_the_schema_and_the_errors() -> None:
    schema = {"type": "object", "required": ["x"]}
    assert json.dumps(schema, separators=(",", ":")) in schema_instructions(schema)
    text = repair_instructions(["$.x: field required"], schema)
    assert text.startswith("Your previous reply was not accepted:\n- $.x: field required\n")
    assert text.endswith('matching this schema:\n{"type":"object","required":["x"]}.')
    assert repair_instructions(["e"], None).endswith("Reply again with only the JSON.")
    many = repair_instructions([f"e{i}" for i in range(50)], None)
    assert "- e19" in many and "- e20" not in many
