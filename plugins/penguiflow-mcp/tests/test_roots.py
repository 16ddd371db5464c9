"""Roots: configured roots answer the reference server's `roots/list`, and `set_roots`
replaces them and tells the server (`notifications/roots/list_changed`), over stdio and HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from penguiflow_mcp import MCPConnector, MCPRoot, MCPRootError, MCPServerConfig
from pydantic import ValidationError


async def _roots_text(connector: MCPConnector, wanted: str) -> str:
    """The server's view of our roots once it mentions `wanted`: after list_changed it asks
    for the roots again on its own, so its answer is polled (with a deadline, not a sleep)."""
    text = ""
    async with asyncio.timeout(20):
        while wanted not in text:
            text = (await connector.call_tool("get-roots-list", {})).text
    return text


def test_configured_roots_are_listed_and_set_roots_replaces_them(
    everything: Callable[..., MCPServerConfig], tmp_path: Path
) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"

    async def scenario() -> None:
        config = everything(roots=[str(first), {"uri": second.as_uri(), "name": "Second"}])
        async with MCPConnector(config) as connector:
            text = await _roots_text(connector, first.as_uri())
            assert "2 total" in text
            assert f"URI: {second.as_uri()}" in text and "Second" in text

            await connector.set_roots([MCPRoot(uri=str(tmp_path / "third"), name="Third")])
            text = await _roots_text(connector, (tmp_path / "third").as_uri())
            assert "1 total" in text and "Third" in text
            assert first.as_uri() not in text
            assert connector.roots == [MCPRoot(uri=(tmp_path / "third").as_uri(), name="Third")]

    asyncio.run(scenario())


def test_without_roots_the_capability_is_not_offered_until_set_roots(
    everything: Callable[..., MCPServerConfig], tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            names = {tool.name for tool in await connector.list_tools()}
            # The reference server only offers get-roots-list to clients with roots.
            assert "get-roots-list" not in names
            assert connector.roots is None
            await connector.set_roots([tmp_path])
            names = {tool.name for tool in await connector.list_tools()}
            assert "get-roots-list" in names
            assert tmp_path.as_uri() in await _roots_text(connector, tmp_path.as_uri())

    asyncio.run(scenario())


def test_roots_must_be_paths_or_file_uris(tmp_path: Path) -> None:
    assert MCPRoot.model_validate("relative/dir").uri == (
        (Path.cwd() / "relative" / "dir").as_uri()
    )
    assert MCPRoot(uri="file:///srv/data").uri == "file:///srv/data"
    with pytest.raises(ValidationError, match=r"https: URI; MCP roots must be file://"):
        MCPServerConfig(name="s", command="x", roots=["https://example.com/repo"])
    with pytest.raises(MCPRootError, match="wrap it in a list"):
        from penguiflow_mcp._roots import to_roots

        to_roots(str(tmp_path))


def test_client_capability_names_are_exported() -> None:
    import penguiflow_mcp

    mine = {
        "ElicitationAnswer",
        "ElicitationCallback",
        "ElicitationRequest",
        "MCPElicitationError",
        "MCPRoot",
        "MCPRootError",
    }
    assert mine <= set(penguiflow_mcp.__all__)
    assert all(hasattr(penguiflow_mcp, name) for name in mine)
    from penguiflow.errors import PenguiFlowError

    assert issubclass(penguiflow_mcp.MCPElicitationError, PenguiFlowError)
    assert issubclass(penguiflow_mcp.MCPRootError, PenguiFlowError)
