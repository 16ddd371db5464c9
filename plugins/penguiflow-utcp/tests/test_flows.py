"""Per-flow lifecycle against the real manual apps: stopping a flow closes the UTCP clients of
the connectors that flow used, and only those no other running flow still uses."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from penguiflow_utcp import UTCPConnector

from penguiflow.testing import run_async


def test_stopping_a_flow_closes_only_the_clients_it_used(
    manual_url: str, other_manual_url: str
) -> None:
    """Two flows: each calls a manual of its own and one they share; a fourth manual is
    called from the code that started them, outside any flow. Stopping the first flow closes
    its own client only; stopping the second closes its own and the shared one; the outside
    one stays open. (Regression: the plugin had no flow hooks, so clients stayed open after
    every flow stopped.)"""
    from penguiflow_utcp import hooks

    from penguiflow import Headers, Message, Node, NodePolicy, create
    from penguiflow.plugins import PluginSettings, collect_connectors, load_hooks, reset_hooks

    host = load_hooks(PluginSettings())
    manuals = [
        {"name": "first", "url": manual_url},
        {"name": "second", "url": other_manual_url},
        {"name": "shared", "url": manual_url},
        {"name": "outside", "url": other_manual_url},
    ]
    found = collect_connectors(host, config={"utcp": {"manuals": manuals}})
    by_name = {c.name: c for c in found if isinstance(c, UTCPConnector)}
    first, second, shared, outside = (by_name[m["name"]] for m in manuals)

    def calling(*connectors: UTCPConnector) -> Any:
        async def node(message: Any, ctx: Any) -> Any:
            return [(await c.call_tool("add", {"a": 1, "b": 2})).structured for c in connectors]

        name = "call_" + "_".join(c.name for c in connectors)
        return create(Node(node, name=name, policy=NodePolicy(validate="none")).to())

    def is_open(connector: UTCPConnector) -> bool:
        return connector._client is not None

    async def settled() -> None:
        # The shutdown hook closes clients in tasks of its own: wait for them, with a deadline.
        with anyio.fail_after(20):
            while hooks._closing:
                await asyncio.sleep(0.01)

    async def through(flow: Any) -> Any:
        await flow.emit(Message(payload=None, headers=Headers(tenant="t")))
        return await flow.fetch()

    async def scenario() -> None:
        one = calling(first, shared)
        two = calling(second, shared)
        one.run()
        two.run()
        # Called by the task that started both flows, after they started: not their work.
        assert (await outside.call_tool("add", {"a": 2, "b": 2})).structured == {"sum": 4}
        assert await through(one) == [{"sum": 3}, {"sum": 3}]
        assert await through(two) == [{"sum": 3}, {"sum": 3}]
        assert all(map(is_open, (first, second, shared, outside)))

        await one.stop()
        await settled()
        assert not is_open(first)
        assert is_open(second) and is_open(shared) and is_open(outside)

        await two.stop()
        await settled()
        assert not is_open(second) and not is_open(shared)
        assert is_open(outside)
        # A closed connector fetches its manual again when used.
        assert (await first.call_tool("add", {"a": 5, "b": 5})).structured == {"sum": 10}
        for connector in (first, second, shared, outside):
            await connector.aclose()

    reset_hooks(host)
    try:
        run_async(scenario, timeout=120)
    finally:
        reset_hooks(None)


def test_release_flow_says_whether_the_last_flow_using_a_connector_stopped(
    manual_url: str,
) -> None:
    class Flow:
        pass

    connector = UTCPConnector.http("notes", manual_url)
    a, b, stranger = Flow(), Flow(), Flow()
    connector._flows.update((a, b))
    assert connector.release_flow(stranger) is False  # never used it
    assert connector.release_flow(a) is False  # b still uses it
    assert connector.release_flow(b) is True
    assert connector.release_flow(b) is False  # already released
