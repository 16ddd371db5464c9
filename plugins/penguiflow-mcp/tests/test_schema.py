"""Arguments are checked against the whole input schema the server declares, before sending."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import HTTPServer
from penguiflow_mcp import MCPConnector, MCPServerConfig, MCPToolError
from penguiflow_mcp._schema import ArgumentChecker

from penguiflow.testing import run_async


def calc(server: HTTPServer) -> MCPConnector:
    return MCPConnector(MCPServerConfig(name="calc", url=server.url, bearer_token=server.token))


def test_constraints_a_subset_checker_missed_are_refused_before_sending(
    http_server: HTTPServer,
) -> None:
    """`pattern`, bounds, `maxItems` and `enum` from a real server's schema (pydantic's)."""
    connector = calc(http_server)

    async def scenario() -> list[str]:
        async with connector:
            good = await connector.call_tool("book", {"origin": "LHR", "seats": 2})
            assert good.structured == {"origin": "LHR", "seats": 2, "cabin": "economy"}
            texts = []
            for bad in (
                {"origin": "lhr1", "seats": 2},
                {"origin": "LHR", "seats": 12},
                {"origin": "LHR", "seats": 2, "tags": ["a", "b", "c"]},
                {"origin": "LHR", "seats": 2, "cabin": "first"},
            ):
                with pytest.raises(MCPToolError) as raised:
                    await connector.call_tool("book", bad)
                texts.append(str(raised.value))
            return texts

    pattern, bound, items, enum = run_async(scenario, timeout=60)
    for text in (pattern, bound, items, enum):
        assert text.startswith("arguments for calc.book do not match its schema (not sent): ")
    assert "origin: 'lhr1' does not match '^[A-Z]{3}$'" in pattern
    assert "seats: 12 is greater than the maximum of 9" in bound
    assert "tags: ['a', 'b', 'c'] is too long" in items
    assert "cabin: 'first' is not one of ['economy', 'business']" in enum


def test_missing_and_unexpected_fields_are_named() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "inner": {
                "type": "object",
                "properties": {"x": {"type": "string"}},
                "required": ["x"],
                "additionalProperties": False,
            },
        },
        "required": ["a", "inner"],
    }
    checker = ArgumentChecker("srv.tool", schema)
    assert checker.errors({"inner": {"y": 1}}) == [
        "a: field required",
        "inner.x: field required",
        "inner.y: unexpected field",
    ]
    assert checker.errors({"a": "one", "inner": {"x": "ok"}}) == [
        "a: 'one' is not of type 'integer'"
    ]
    assert checker.errors({"a": 1, "inner": {"x": "ok"}}) == []


def test_refs_and_one_of_are_followed() -> None:
    schema = {
        "type": "object",
        "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}}},
        "properties": {
            "at": {"$ref": "#/$defs/Point"},
            "mode": {"oneOf": [{"const": "fast"}, {"type": "integer", "minimum": 0}]},
        },
    }
    checker = ArgumentChecker("srv.tool", schema)
    assert checker.errors({"at": {"x": 1.5}, "mode": 3}) == []
    assert checker.errors({"at": {"x": "far"}}) == ["at.x: 'far' is not of type 'number'"]
    assert checker.errors({"mode": -1})[0].startswith("mode: -1 is not valid under any")


def test_a_schema_that_is_not_json_schema_is_left_to_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="penguiflow.mcp"):
        checker = ArgumentChecker("srv.tool", {"type": "object", "properties": {"a": {"type": 5}}})
    assert checker.errors({"a": 1}) == []
    assert "srv.tool declares an input schema that is not valid JSON Schema" in caplog.text
