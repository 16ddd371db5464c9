"""List changes reach the connector: cached listings are dropped and `on_tools_changed`
listeners called, whether the server announces them on a `subscriptions/listen` stream
(protocol 2026-07-28, over stdio and streamable HTTP) or as plain notifications (older
servers). servers/growing_stdio.py's `unlock` tool adds a tool and announces it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import HERE, free_port, wait_listening
from penguiflow_mcp import MCPConnector, MCPServerConfig

SERVER = str(HERE / "servers" / "growing_stdio.py")


def growing() -> MCPConnector:
    return MCPConnector(MCPServerConfig(name="growing", command=sys.executable, args=[SERVER]))


def _start_http(*flags: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--http", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(proc, port, "the growing HTTP server", timeout_s=20)
    return proc, f"http://127.0.0.1:{port}/mcp"


def _serve_http(*flags: str) -> Iterator[str]:
    proc, url = _start_http(*flags)
    try:
        yield url
    finally:
        # killed: a graceful stop would wait for the client's open listen stream
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def growing_http() -> Iterator[str]:
    yield from _serve_http()


@pytest.fixture
def growing_legacy_http() -> Iterator[str]:
    yield from _serve_http("--legacy")


async def _unlock_and_see(connector: MCPConnector) -> list[MCPConnector]:
    """Call `unlock`, wait for the change to be announced, and check the new tool works."""
    changed = asyncio.Event()
    seen: list[MCPConnector] = []

    def on_change(which: MCPConnector) -> None:
        seen.append(which)
        changed.set()

    remove = connector.on_tools_changed(on_change)
    assert sorted(tool.name for tool in await connector.list_tools()) == ["bump", "unlock"]
    assert (await connector.call_tool("unlock", {})).text == "unlocked"
    await asyncio.wait_for(changed.wait(), 10)
    names = sorted(tool.name for tool in await connector.list_tools())
    assert names == ["bump", "secret", "unlock"]
    assert "growing.secret" in {spec.name for spec in await connector.tool_specs()}
    result = await connector.call_tool("secret", {"word": "penguins"})
    assert result.text == "the secret of penguins is 42"
    remove()
    return seen


def test_tools_list_changed_on_the_listen_stream_over_stdio() -> None:
    async def scenario() -> None:
        async with growing() as connector:
            seen = await _unlock_and_see(connector)
            session = connector._session
            assert session is not None and session.client.protocol_version == "2026-07-28"
            assert session.changes is not None and session.changes.honored.tools_list_changed
            # Once, although the SDK also passes the stream's events to the message handler.
            await connector.call_tool("secret", {"word": "again"})
            assert seen == [connector]

    asyncio.run(scenario())


def test_tools_list_changed_on_the_listen_stream_over_http(growing_http: str) -> None:
    async def scenario() -> None:
        async with MCPConnector(MCPServerConfig(name="growing", url=growing_http)) as connector:
            assert await _unlock_and_see(connector) == [connector]
            session = connector._session
            assert session is not None and session.client.protocol_version == "2026-07-28"

    asyncio.run(scenario())


def test_tools_list_changed_notification_from_an_older_server(growing_legacy_http: str) -> None:
    async def scenario() -> None:
        config = MCPServerConfig(name="growing", url=growing_legacy_http)
        async with MCPConnector(config) as connector:
            assert await _unlock_and_see(connector) == [connector]
            session = connector._session
            assert session is not None and session.client.protocol_version == "2025-11-25"

    asyncio.run(scenario())


def test_a_lost_listen_stream_closes_the_session() -> None:
    proc, url = _start_http()

    async def scenario() -> None:
        async with MCPConnector(MCPServerConfig(name="growing", url=url)) as connector:
            await connector.list_tools()
            session = connector._session
            assert session is not None and session.alive
            # The server dies while the session is idle: its listen stream drops and cannot
            # be opened again, so the session closes instead of serving a stale catalog.
            proc.kill()
            deadline = time.monotonic() + 15
            while session.alive:
                assert time.monotonic() < deadline, "the session outlived its listen stream"
                await asyncio.sleep(0.01)  # polling state, with a deadline
            assert connector._session is session and not session.alive

    try:
        asyncio.run(scenario())
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_list_changed_notifications_drop_the_cached_listings() -> None:
    async def scenario() -> None:
        async with growing() as connector:
            connector._listings["resources"] = []
            connector._listings["prompts"] = []
            handler = connector._notification_options()["message_handler"]
            from mcp_types import PromptListChangedNotification, ResourceListChangedNotification

            await handler(
                ResourceListChangedNotification(method="notifications/resources/list_changed")
            )
            assert "resources" not in connector._listings and "prompts" in connector._listings
            await handler(
                PromptListChangedNotification(method="notifications/prompts/list_changed")
            )
            assert connector._listings == {}

    asyncio.run(scenario())


async def _bump_and_hear(connector: MCPConnector) -> None:
    """Subscribe to growing://counter, bump it twice, hear both updates; after unsubscribing,
    a bump is not heard."""
    heard: list[str] = []
    callback_heard = asyncio.Event()

    def on_update(update: object) -> None:
        heard.append(str(getattr(update, "uri", "")))
        callback_heard.set()

    subscription = await connector.subscribe_resource("growing://counter", on_update=on_update)
    updates = aiter(subscription)
    for expected in ("1", "2"):
        assert (await connector.call_tool("bump", {})).text == expected
        update = await asyncio.wait_for(anext(updates), 10)
        assert update.uri == "growing://counter"
        contents = await connector.read_resource("growing://counter")
        assert contents[0].content == expected
    await asyncio.wait_for(callback_heard.wait(), 10)
    assert heard and set(heard) == {"growing://counter"}
    await subscription.aclose()
    count = len(heard)
    # The bump's answer comes after its notification would have: none came.
    assert (await connector.call_tool("bump", {})).text == "3"
    await connector.list_tools()
    assert len(heard) == count


def test_resource_updates_on_the_listen_stream() -> None:
    """2026-07-28 has no resources/subscribe: a subscription reopens the listen stream with
    the URI in its filter, and the update comes on it."""

    async def scenario() -> None:
        async with growing() as connector:
            await connector.list_tools()
            session = connector._session
            assert session is not None and session.client.protocol_version == "2026-07-28"
            await _bump_and_hear(connector)

    asyncio.run(scenario())


# Older servers' resources/subscribe and notifications/resources/updated: test_resources.py,
# against the everything server.


def test_a_reconnect_tells_tool_listeners(growing_http: str) -> None:
    """After the connection is lost and a new session opened, the server may offer other
    tools: listeners hear of it as of a change."""

    async def scenario() -> None:
        config = MCPServerConfig(name="growing", url=growing_http)
        async with MCPConnector(config) as connector:
            told = asyncio.Event()
            connector.on_tools_changed(lambda _: told.set())
            await connector.list_tools()
            session = connector._session
            assert session is not None
            await session.close()  # as when the connection drops
            assert not told.is_set()
            await connector.call_tool("bump", {})  # opens a new session
            await asyncio.wait_for(told.wait(), 10)

    asyncio.run(scenario())
