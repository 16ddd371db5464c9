"""The tool catalog: @tool metadata, build_catalog from nodes and a registry, schema specs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import (
    ModelRegistry,
    Node,
    NodePolicy,
    NodeSpec,
    ToolInputExample,
    ToolLoadingMode,
    build_catalog,
    tool,
)
from penguiflow.catalog import ToolDescriptionWarning, tool_metadata


class Query(BaseModel):
    text: str
    limit: int = 5


class Hits(BaseModel):
    titles: list[str]


@tool(
    desc="Search the knowledge base.",
    side_effects="read",
    tags=["search"],
    examples=[{"args": {"text": "penguins"}, "description": "a simple query"}],
    latency_hint_ms=120,
    loading_mode="deferred",
)
async def search(message: Query, ctx: Any) -> Hits:
    return Hits(titles=[message.text])


async def documented(message: Query, ctx: Any) -> Hits:
    """Look things up by docstring."""
    return Hits(titles=[])


async def silent(message: Query, ctx: Any) -> Hits:
    return Hits(titles=[])


def registry_for(*names: str) -> ModelRegistry:
    registry = ModelRegistry()
    for name in names:
        registry.register(name, Query, Hits)
    return registry


def test_tool_records_metadata_and_returns_the_function() -> None:
    metadata = tool_metadata(search)
    assert metadata is not None and metadata.side_effects == "read"
    assert metadata.examples == (
        ToolInputExample(args={"text": "penguins"}, description="a simple query"),
    )
    assert metadata.loading_mode is ToolLoadingMode.DEFERRED
    with pytest.raises(ValueError, match="side_effects must be one of pure, read, write"):
        tool(side_effects="dangerous")(silent)  # type: ignore[arg-type]


def test_build_catalog_from_nodes_and_registry() -> None:
    nodes = [
        Node(search, name="search", policy=NodePolicy(validate="none")),
        Node(documented, name="documented"),
    ]
    specs = build_catalog(nodes, registry_for("search", "documented"))
    first, second = specs
    assert first.name == "search" and first.desc == "Search the knowledge base."
    assert first.args_model is Query and first.out_model is Hits and first.node is nodes[0]
    assert first.args_schema["required"] == ["text"]
    assert second.desc == "Look things up by docstring." and second.side_effects == "pure"
    record = first.to_tool_record()
    assert record["name"] == "search" and record["side_effects"] == "read"
    assert record["out_schema"]["properties"]["titles"]["type"] == "array"
    assert record["examples"] == [
        {"args": {"text": "penguins"}, "description": "a simple query", "tags": []}
    ]
    assert record["auth_scopes"] == [] and record["cost_hint"] is None  # PenguiFlow's keys


def test_catalog_errors_name_the_node() -> None:
    with pytest.raises(KeyError, match=r"registry.register\('search', InputModel, OutputModel\)"):
        build_catalog([Node(search, name="search")], ModelRegistry())
    with pytest.warns(ToolDescriptionWarning, match="'silent' has no description"):
        build_catalog([Node(silent, name="silent")], registry_for("silent"))
    with pytest.raises(ValueError, match="two nodes are named 'search'"):
        build_catalog(
            [Node(search, name="search"), Node(documented, name="search")], registry_for("search")
        )


async def test_a_spec_from_json_schemas_calls_through() -> None:
    async def call(arguments: Any) -> Any:
        return {"echo": dict(arguments)}

    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    spec = NodeSpec.from_schema("server.echo", desc="Echo.", input_schema=schema, call=call)
    assert (
        spec.args_schema == schema and spec.side_effects == "external" and spec.out_schema is None
    )
    assert spec.call is not None and await spec.call({"q": "x"}) == {"echo": {"q": "x"}}
    with pytest.raises(ValueError, match="needs args_model"):
        NodeSpec(name="bare", desc="no schema")


def test_argument_errors_by_model_or_schema() -> None:
    from penguiflow.catalog import argument_errors

    spec = build_catalog([Node(search, name="search")], registry_for("search"))[0]
    assert spec.argument_errors({"text": "x"}) == []
    assert spec.argument_errors({"limit": "many"}) == [
        "text: Field required",
        "limit: Input should be a valid integer, unable to parse string as an integer",
    ]
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert argument_errors(schema, {"n": 1}) == []
    assert argument_errors(schema, {"n": "one"}) == ["n: expected integer, got string"]
    assert argument_errors({"type": "array"}, {}) == ["(arguments): expected array, got object"]
