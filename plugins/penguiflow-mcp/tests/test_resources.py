"""Resources of the reference everything server, over stdio and streamable HTTP: listings
as typed values, templates expanded and read, subscriptions delivering
`notifications/resources/updated` (its toggle-subscriber-updates tool sends them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from penguiflow_mcp import (
    MCPConnector,
    MCPResource,
    MCPResourceTemplate,
    MCPResourceUpdate,
    MCPServerConfig,
    expand_template,
)

from penguiflow.errors import ConfigurationError

DOC = "demo://resource/static/document/architecture.md"


def test_lists_resources_and_templates_and_reads_them(
    everything: Callable[..., MCPServerConfig],
) -> None:
    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            resources = await connector.list_resources()
            assert all(isinstance(r, MCPResource) for r in resources)
            doc = next(r for r in resources if r.uri == DOC)
            assert doc.name == "architecture.md" and doc.mime_type == "text/markdown"
            (content,) = await connector.read_resource(doc.uri)
            assert isinstance(content.content, str) and content.content

            templates = {t.name: t for t in await connector.list_resource_templates()}
            text = templates["Dynamic Text Resource"]
            assert isinstance(text, MCPResourceTemplate)
            assert text.variables == ("resourceId",)
            uri = text.expand(resourceId=7)
            assert uri == "demo://resource/dynamic/text/7"
            (read,) = await connector.read_resource(uri)
            assert isinstance(read.content, str) and "7" in read.content
            blob = templates["Dynamic Blob Resource"].expand(resourceId=3)
            (read,) = await connector.read_resource(blob)
            assert isinstance(read.content, bytes)

            # completions of a template's argument
            done = await connector.complete("resourceId", "12", template=text.uri_template)
            assert done.values == ("12",)

    asyncio.run(scenario())


def test_subscriptions_deliver_updates_and_unsubscribe(
    everything: Callable[..., MCPServerConfig],
) -> None:
    called: list[MCPResourceUpdate] = []

    async def scenario() -> None:
        async with MCPConnector(everything()) as connector:
            subscription = await connector.subscribe_resource(DOC, on_update=called.append)
            async with subscription:
                # The tool sends an update for each subscribed resource at once, then every 5 s.
                await connector.call_tool("toggle-subscriber-updates", {})
                update = await asyncio.wait_for(anext(subscription), 15)
                assert update == MCPResourceUpdate("everything", DOC)
                await connector.call_tool("toggle-subscriber-updates", {})
            assert subscription.closed and DOC not in connector._subscriptions
            # a closed subscription ends its iteration
            assert [u async for u in subscription] == []

    asyncio.run(scenario())
    assert called and called[0].uri == DOC


def test_expand_template_is_rfc6570_level_1() -> None:
    assert expand_template("x://a/{id}/{name}", id=1, name="a b/c") == "x://a/1/a%20b%2Fc"
    with pytest.raises(ConfigurationError, match="'name'"):
        expand_template("x://{name}")
    with pytest.raises(ConfigurationError, match="level-1"):
        expand_template("x://{+path}", path="p")
