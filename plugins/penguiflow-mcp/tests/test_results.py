"""Results from a real MCP server over streamable HTTP: one `ToolResult` shape for text,
structured content, binary and resource content and links, and the bounded store that keeps
content out of the prompt."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from conftest import HTTPServer
from penguiflow_mcp import MCPConnector, MCPResourceContent, MCPServerConfig
from penguiflow_mcp._results import ArtifactStore, tool_result

from penguiflow.connectors import ToolContentRef, ToolResourceLink, ToolResult
from penguiflow.errors import UnknownNameError
from penguiflow.testing import run_async

ARCHIVE = gzip.compress(b"calc archive " * 50, mtime=0)  # what the server's `archive` tool embeds


def _connector(server: HTTPServer, **options: Any) -> MCPConnector:
    return MCPConnector(
        MCPServerConfig(name="calc", url=server.url, bearer_token=server.token, **options)
    )


def test_an_embedded_binary_resource_keeps_its_mime_type_and_bytes(
    http_server: HTTPServer,
) -> None:
    # Regression: the block came back as an application/json reference whose content and
    # 200-character preview held the base64 data.
    connector = _connector(http_server)

    async def scenario() -> ToolResult:
        try:
            result = await connector.call_tool("archive", {})
            (reference,) = result.references
            assert connector.artifact(reference.ref) == ("application/gzip", ARCHIVE)
            return result
        finally:
            await connector.aclose()

    result = run_async(scenario)
    (reference,) = result.references
    assert reference.mime_type == "application/gzip" and reference.size == len(ARCHIVE)
    assert reference.uri == "calc://notes.gz"
    seen = result.model_dump(mode="json")  # what a planner's model is shown
    assert seen == {"references": [reference.model_dump(mode="json")]}
    assert "preview" not in seen["references"][0]  # no binary data, encoded or not
    assert "blob" not in json.dumps(seen)


def test_text_resources_are_text_and_links_can_be_followed(http_server: HTTPServer) -> None:
    connector = _connector(http_server)

    async def scenario() -> tuple[ToolResult, ToolResult, list[MCPResourceContent]]:
        try:
            notes = await connector.call_tool("notes", {})
            link = await connector.call_tool("link", {})
            return notes, link, await connector.read_resource(link.links[0].uri)
        finally:
            await connector.aclose()

    notes, link, contents = run_async(scenario)
    assert notes == ToolResult(text="# Notes")
    assert link == ToolResult(
        links=(
            ToolResourceLink(uri="calc://notes.gz", name="notes.gz", mime_type="application/gzip"),
        )
    )
    assert link.model_dump(mode="json") == {
        "links": [{"uri": "calc://notes.gz", "name": "notes.gz", "mime_type": "application/gzip"}]
    }
    (content,) = contents
    assert content.mime_type == "application/gzip" and content.content == ARCHIVE


def test_the_reference_store_is_bounded_by_count_and_size() -> None:
    store = ArtifactStore("calc", max_items=2, max_bytes=10)
    first = store.keep("text/plain", "abc")
    second = store.keep("application/octet-stream", b"defg")
    store.get(first.ref)  # used: the least recently used is now `second`
    third = store.keep("text/plain", "hi")
    assert len(store) == 2 and store.get(first.ref) == ("text/plain", "abc")
    with pytest.raises(UnknownNameError, match=r"evicted .*max_artifacts"):
        store.get(second.ref)
    big = store.keep("application/octet-stream", b"x" * 50)  # over max_bytes: kept alone
    assert len(store) == 1 and store.size_bytes == 50
    assert store.get(big.ref)[1] == b"x" * 50
    with pytest.raises(UnknownNameError):
        store.get(third.ref)


def test_reference_sizes_are_bytes_and_only_text_has_a_preview() -> None:
    # Regression: a text reference's size was its length in characters, not bytes.
    store = ArtifactStore("calc", max_items=8, max_bytes=1_000)
    text = store.keep("text/plain", "été")
    assert text.size == 5 and text.preview == "été"
    data = store.keep("application/octet-stream", b"\x00\x01", uri="calc://x", name="x")
    assert data == ToolContentRef(
        ref=data.ref, mime_type="application/octet-stream", size=2, uri="calc://x", name="x"
    )
    assert data.model_dump(mode="json") == {
        "ref": data.ref,
        "mime_type": "application/octet-stream",
        "size": 2,
        "uri": "calc://x",
        "name": "x",
    }


def _call_result(content: list[Any], structured: Any = None) -> Any:
    from mcp_types import CallToolResult

    return CallToolResult.model_validate(
        {"content": content, "structuredContent": structured, "isError": False}
    )


def test_structured_content_is_not_repeated_as_text_and_large_content_is_referenced() -> None:
    store = ArtifactStore("calc", max_items=8, max_bytes=100_000)
    # The spec asks servers to send structured content as a text block as well.
    twice = {"sum": 5}
    result = tool_result(
        _call_result([{"type": "text", "text": json.dumps(twice, indent=2)}], twice), store, 100
    )
    assert result == ToolResult(structured=twice)
    big = {"rows": ["r" * 50] * 10}
    result = tool_result(
        _call_result(
            [{"type": "text", "text": json.dumps(big)}, {"type": "text", "text": "and a note"}],
            big,
        ),
        store,
        100,
    )
    assert result.structured is None and result.text == "and a note"
    (reference,) = result.references
    assert reference.mime_type == "application/json" and reference.preview is not None
    assert json.loads(store.get(reference.ref)[1]) == big
    # Text blocks are joined by a blank line; an empty structured value is still a value.
    joined = tool_result(
        _call_result([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}], {}),
        store,
        100,
    )
    assert joined.text == "one\n\ntwo" and joined.structured == {}
    assert joined.model_dump(mode="json") == {"text": "one\n\ntwo", "structured": {}}
    assert ToolResult.model_validate(joined.model_dump(mode="json")) == joined
