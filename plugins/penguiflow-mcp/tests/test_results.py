"""Binary and resource results from a real MCP server over streamable HTTP, and the bounded
store that keeps results out of the prompt."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from conftest import HTTPServer
from penguiflow_mcp import MCPConnector, MCPResourceContent, MCPServerConfig
from penguiflow_mcp._results import ArtifactStore

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

    async def scenario() -> dict[str, Any]:
        try:
            reference = await connector.call_tool("archive", {})
            assert connector.artifact(reference["ref"]) == ("application/gzip", ARCHIVE)
            return dict(reference)
        finally:
            await connector.aclose()

    reference = run_async(scenario)
    assert reference["mime_type"] == "application/gzip" and reference["size"] == len(ARCHIVE)
    assert reference["uri"] == "calc://notes.gz"
    assert "preview" not in reference  # no binary data, encoded or not, reaches the prompt
    assert "blob" not in json.dumps(reference)


def test_text_resources_are_text_and_links_can_be_followed(http_server: HTTPServer) -> None:
    connector = _connector(http_server)

    async def scenario() -> tuple[Any, Any, list[MCPResourceContent]]:
        try:
            notes = await connector.call_tool("notes", {})
            link = await connector.call_tool("link", {})
            return notes, link, await connector.read_resource(link["uri"])
        finally:
            await connector.aclose()

    notes, link, contents = run_async(scenario)
    assert notes == "# Notes"
    assert link == {
        "type": "resource_link",
        "uri": "calc://notes.gz",
        "name": "notes.gz",
        "mime_type": "application/gzip",
    }
    (content,) = contents
    assert content.mime_type == "application/gzip" and content.content == ARCHIVE


def test_the_reference_store_is_bounded_by_count_and_size() -> None:
    store = ArtifactStore("calc", max_items=2, max_bytes=10)
    first = store.keep("text/plain", "abc")
    second = store.keep("application/octet-stream", b"defg")
    store.get(first["ref"])  # used: the least recently used is now `second`
    third = store.keep("text/plain", "hi")
    assert len(store) == 2 and store.get(first["ref"]) == ("text/plain", "abc")
    with pytest.raises(UnknownNameError, match=r"evicted .*max_artifacts"):
        store.get(second["ref"])
    big = store.keep("application/octet-stream", b"x" * 50)  # over max_bytes: kept alone
    assert len(store) == 1 and store.size_bytes == 50
    assert store.get(big["ref"])[1] == b"x" * 50
    with pytest.raises(UnknownNameError):
        store.get(third["ref"])
