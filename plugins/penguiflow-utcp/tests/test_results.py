"""Every UTCP call answers a `ToolResult` (text as `text`, JSON as `structured`), and each
tool's spec describes that shape with the manual's declared outputs as `structured`."""

from __future__ import annotations

import pytest
from penguiflow_utcp import UTCPConnector
from penguiflow_utcp._results import tool_result

from penguiflow.catalog import argument_errors
from penguiflow.connectors import ToolResult
from penguiflow.testing import run_async


def test_text_and_json_answers_share_one_shape(manual_url: str) -> None:
    connector = UTCPConnector.http("results", manual_url.replace("/utcp", "/utcp-results"))

    async def scenario() -> tuple[ToolResult, ToolResult, dict[str, object] | None]:
        try:
            greeting = await connector.call_tool("greet", {"query": "ada"})
            total = await connector.call_tool("sum", {"a": 2, "b": 3})
            specs = {spec.name: spec for spec in await connector.tool_specs()}
            return greeting, total, specs["results.sum"].out_schema
        finally:
            await connector.aclose()

    greeting, total, schema = run_async(scenario)
    assert greeting == ToolResult(text="hello ada")
    assert total == ToolResult(structured={"sum": 5})
    # What a planner shows its model: no empty fields.
    assert greeting.model_dump(mode="json") == {"text": "hello ada"}
    assert total.model_dump(mode="json") == {"structured": {"sum": 5}}
    # The declared outputs describe `structured`; their $defs still resolve from the root.
    assert schema is not None
    assert schema["properties"]["structured"]["properties"]["sum"] == {"$ref": "#/$defs/count"}
    assert schema["$defs"] == {"count": {"type": "integer"}}
    assert argument_errors(schema, total.model_dump(mode="json")) == []


def test_values_from_other_protocols() -> None:
    assert tool_result(None) == ToolResult()
    assert tool_result(b"caf\xc3\xa9") == ToolResult(text="café")
    assert tool_result([1, 2]) == ToolResult(structured=[1, 2])
    assert tool_result({"when": object}).structured == {"when": str(object)}
    with pytest.raises(ValueError, match=r"3 bytes of binary data"):
        tool_result(b"\xff\x00\xfe")
