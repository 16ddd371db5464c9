"""The catalog as PenguiFlow 3.11's `penguiflow.catalog` behaves, plus what we keep besides.

Written from PenguiFlow's public behaviour: `NodeSpec`'s field order, `@tool`'s keywords,
`build_catalog(..., default_loading_mode=...)`, and the keys of `to_tool_record()`.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from penguiflow import (
    ModelRegistry,
    Node,
    NodeSpec,
    ToolInputExample,
    ToolLoadingMode,
    build_catalog,
    tool,
)
from penguiflow.catalog import ToolDescriptionWarning, tool_metadata
from penguiflow.errors import ConfigurationError, InvalidTypeError, PenguiFlowError

#: NodeSpec's fields in PenguiFlow 3.11's order, then ours.
PENGUIFLOW_FIELDS = [
    "node", "name", "desc", "args_model", "out_model", "side_effects", "tags", "auth_scopes",
    "cost_hint", "latency_hint_ms", "safety_notes", "extra", "loading_mode", "examples",
]  # fmt: skip
#: The keys of PenguiFlow 3.11's tool record.
RECORD_KEYS = {
    "name", "desc", "side_effects", "loading_mode", "tags", "auth_scopes", "cost_hint",
    "latency_hint_ms", "safety_notes", "args_schema", "out_schema", "extra", "examples",
}  # fmt: skip


class Query(BaseModel):
    text: str


class Answer(BaseModel):
    text: str


def no_placeholders(args: Any, action: Any) -> str | None:
    return None


@tool(
    desc="Search the web.",
    side_effects="read",
    tags=["web", "search", "web", "fast", "search"],
    auth_scopes=["net", "net"],
    arg_validation={"reject_placeholders": True},
    arg_validator=no_placeholders,
    extra={"owner": "research", "handle": object()},
    examples={"args": {"text": "penguins"}, "description": "one example, not a list"},
)
async def search(message: Query, ctx: Any) -> Answer:
    return Answer(text=message.text)


@tool(loading_mode="always")
async def pinned(message: Query, ctx: Any) -> Answer:
    """Always in the prompt."""
    return Answer(text=message.text)


async def undescribed(message: Query, ctx: Any) -> Answer:
    return Answer(text=message.text)


def catalog(*nodes: Node, **kwargs: Any) -> list[NodeSpec]:
    registry = ModelRegistry()
    for node in nodes:
        registry.register(str(node.name), Query, Answer)
    return build_catalog(list(nodes), registry, **kwargs)


def test_node_spec_fields_come_in_penguiflows_order_then_ours() -> None:
    names = [f.name for f in dataclasses.fields(NodeSpec)]
    assert names == [*PENGUIFLOW_FIELDS, "input_schema", "output_schema", "call"]
    node = Node(search, name="search")
    spec = NodeSpec(
        node, "search", "Search.", Query, Answer, "read", ["web"], ["net"], "low", 120,
        "read-only", {"k": 1}, ToolLoadingMode.DEFERRED, [ToolInputExample(args={"text": "x"})],
    )  # fmt: skip
    assert spec.node is node and spec.name == "search" and spec.out_model is Answer
    assert (spec.cost_hint, spec.latency_hint_ms, spec.safety_notes) == ("low", 120, "read-only")
    assert spec.loading_mode is ToolLoadingMode.DEFERRED and spec.examples[0].args == {"text": "x"}


def test_a_spec_without_a_node_is_a_connectors_tool() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    spec = NodeSpec(name="server.find", desc="Find.", input_schema=schema)
    assert spec.node is None and spec.args_schema == schema and spec.out_schema is None


def test_a_spec_without_a_name_says_how_to_give_one() -> None:
    with pytest.raises(ConfigurationError, match=r"needs a name.*NodeSpec\(name=\.\.\."):
        NodeSpec(desc="nameless", args_model=Query)
    # Our 4.0 order put name first; a string where the node goes is that mistake.
    with pytest.raises(InvalidTypeError, match=r"first field is node.*pass name=\.\.\. "):
        NodeSpec("search", "Search.", Query)  # type: ignore[arg-type]


def test_duplicate_tags_and_scopes_are_dropped_in_order() -> None:
    metadata = tool_metadata(search)
    assert metadata is not None
    assert metadata.tags == ("web", "search", "fast") and metadata.auth_scopes == ("net",)
    spec = NodeSpec(name="t", args_model=Query, tags=["b", "a", "b"], auth_scopes=["x", "x"])
    assert spec.tags == ("b", "a") and spec.auth_scopes == ("x",)
    example = ToolInputExample(args={}, tags=["t", "t", "", "u"])
    assert example.tags == ["t", "u"]


def test_a_string_where_a_list_of_tags_goes_is_an_error_not_one_tag_per_letter() -> None:
    with pytest.raises(InvalidTypeError, match=r"tags must be a list of strings.*tags=\['web'\]"):
        tool(tags="web")(undescribed)
    with pytest.raises(InvalidTypeError, match="auth_scopes must be a list"):
        NodeSpec(name="t", args_model=Query, auth_scopes="net")


def test_arg_validation_and_validator_are_recorded_in_extra() -> None:
    spec = catalog(Node(search, name="search"))[0]
    assert spec.extra["arg_validation"] == {"reject_placeholders": True}
    assert spec.extra["arg_validator"] is no_placeholders
    assert spec.extra["owner"] == "research"
    record = spec.to_tool_record()
    # The model reads the checks' settings; the callable and a non-JSON value stay out.
    assert record["extra"] == {"owner": "research", "arg_validation": {"reject_placeholders": True}}
    with pytest.raises(InvalidTypeError, match="arg_validator must be callable"):
        tool(arg_validator="strict")(undescribed)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="arg_validation must be a mapping"):
        tool(arg_validation=["strict"])(undescribed)  # type: ignore[arg-type]


def test_loading_mode_none_takes_the_catalogs_default() -> None:
    async def bare(message: Query, ctx: Any) -> Answer:
        return Answer(text=message.text)

    metadata = tool_metadata(tool()(bare))
    assert metadata is not None and metadata.loading_mode is None
    plain, fixed = catalog(
        Node(search, name="search"), Node(pinned, name="pinned"), default_loading_mode="deferred"
    )
    assert plain.loading_mode is ToolLoadingMode.DEFERRED
    assert fixed.loading_mode is ToolLoadingMode.ALWAYS  # its own @tool choice wins
    assert catalog(Node(search, name="search"))[0].loading_mode is ToolLoadingMode.ALWAYS
    spec = NodeSpec(name="t", args_model=Query, loading_mode="deferred")  # type: ignore[arg-type]
    assert spec.loading_mode is ToolLoadingMode.DEFERRED


def test_an_unknown_loading_mode_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError, match="loading_mode must be one of always, deferred"):
        catalog(Node(search, name="search"), default_loading_mode="lazy")
    with pytest.raises(ConfigurationError, match="loading_mode must be one of always, deferred"):
        tool(loading_mode="sometimes")(undescribed)


def test_examples_accept_one_mapping_and_extra_examples_win() -> None:
    spec = catalog(Node(search, name="search"))[0]
    assert spec.examples_payload() == [
        {"args": {"text": "penguins"}, "description": "one example, not a list", "tags": []}
    ]

    @tool(
        extra={"examples": [{"args": {"text": "from extra"}}]},
        examples=[{"args": {"text": "from examples"}}],
    )
    async def both(message: Query, ctx: Any) -> Answer:
        """Both kinds of examples."""
        return Answer(text=message.text)

    spec = catalog(Node(both, name="both"))[0]
    assert [e.args for e in spec.examples] == [{"text": "from extra"}]
    assert "examples" not in spec.extra
    # A spec built directly with examples only in `extra` shows them all the same.
    direct = NodeSpec(name="d", args_model=Query, extra={"examples": [{"args": {"text": "e"}}]})
    assert direct.examples_payload() == [{"args": {"text": "e"}, "description": None, "tags": []}]
    assert direct.to_tool_record()["extra"] == {}


def test_example_args_must_be_json() -> None:
    with pytest.raises(ValidationError, match="example args must be JSON-serialisable"):
        ToolInputExample(args={"when": object()})
    with pytest.raises(InvalidTypeError, match="each example must be a ToolInputExample"):
        tool(examples=["text=penguins"])(undescribed)  # type: ignore[list-item]


def test_a_node_without_a_description_is_a_warning_naming_the_fix() -> None:
    with pytest.warns(ToolDescriptionWarning) as caught:
        spec = catalog(Node(undescribed, name="quiet"))[0]
    message = str(caught[0].message)
    assert "'quiet' has no description" in message and "@tool(desc=...) or a docstring" in message
    assert caught[0].filename == __file__  # points at the caller of build_catalog
    assert spec.desc == "undescribed"  # the function's name, as in PenguiFlow
    assert issubclass(ToolDescriptionWarning, UserWarning)
    assert issubclass(ToolDescriptionWarning, PenguiFlowError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        catalog(Node(pinned, name="pinned"))  # a docstring is a description: no warning


def test_tool_record_has_every_penguiflow_key() -> None:
    spec = catalog(Node(search, name="search"))[0]
    record = spec.to_tool_record()
    assert set(record) >= RECORD_KEYS
    assert record["tags"] == ["web", "search", "fast"] and record["auth_scopes"] == ["net"]
    assert record["loading_mode"] == "always" and record["side_effects"] == "read"
    assert record["cost_hint"] is None and record["latency_hint_ms"] is None
    assert record["args_schema"] == Query.model_json_schema()
    assert record["out_schema"] == Answer.model_json_schema()
    json.dumps(record)  # ready for a prompt as it is

    async def call(arguments: Any) -> Any:
        return dict(arguments)

    connector = NodeSpec.from_schema(
        "srv.echo", desc="Echo.", input_schema={"type": "object"}, call=call
    ).to_tool_record()
    assert set(connector) >= RECORD_KEYS and connector["out_schema"] is None
