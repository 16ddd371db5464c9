"""`RemoteNode(transport=A2AHttpTransport(...))` in a flow, against an agent in another
process built with the official SDK: results, chunks, the stored binding, and cancellation
of the outer trace reaching the remote task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from client_support import agent_process
from penguiflow_a2a.client import A2AHttpTransport

from penguiflow.core import create
from penguiflow.node import NodePolicy
from penguiflow.remote import RemoteNode
from penguiflow.state import RemoteBinding
from penguiflow.state.in_memory import InMemoryStateStore
from penguiflow.types import Headers, Message

TOKEN = "secret-token"
#: how long a test waits for something another process does before it fails
DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def sdk_agent() -> Iterator[str]:
    with agent_process("sdk_agent.py", "--token", TOKEN) as url:
        yield url


@pytest.fixture
async def transport() -> AsyncIterator[A2AHttpTransport]:
    async with A2AHttpTransport(bearer_token=TOKEN, timeout_s=20) as made:
        yield made


def message(text: str) -> Message:
    return Message(payload=text, headers=Headers(tenant="acme"), meta={"session_id": "s-1"})


async def poll(check: Any) -> Any:
    """`await check()` until it returns something truthy, failing after `DEADLINE_S`."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.02)


async def test_a_remote_node_returns_the_agents_answer_and_stores_the_binding(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    store = InMemoryStateStore()
    node = RemoteNode(
        transport=transport,
        skill="echo",
        agent_url=sdk_agent,
        name="remote",
        policy=NodePolicy(validate="none"),
    )
    flow = create(node.to(), state_store=store)
    flow.run()
    sent = message("echo through a flow")
    await flow.emit(sent)
    assert await flow.fetch() == "echo:through a flow"
    await flow.stop()
    (binding,) = await store.list_bindings(sent.trace_id)
    assert isinstance(binding, RemoteBinding)
    assert binding.agent_url == sdk_agent and binding.task_id and binding.context_id
    assert binding.remote_skill == "echo" and binding.tenant_id == "acme"
    assert binding.router_session_id == "s-1"


async def test_a_streaming_remote_node_emits_the_agents_chunks(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    node = RemoteNode(
        transport=transport,
        skill="echo",
        agent_url=sdk_agent,
        name="remote",
        streaming=True,
        policy=NodePolicy(validate="none"),
    )
    flow = create(node.to())
    flow.run()
    await flow.emit(message("stream 2"))
    items = [await flow.fetch() for _ in range(4)]
    await flow.stop()
    chunks = [item.payload for item in items[:3]]
    assert [chunk.text for chunk in chunks] == ["c0 ", "c1 ", ""]
    assert [chunk.done for chunk in chunks] == [False, False, True]
    assert items[3] == "c0 c1 "


async def test_a_failed_remote_task_fails_the_node(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    node = RemoteNode(
        transport=transport,
        skill="echo",
        agent_url=sdk_agent,
        name="remote",
        streaming=True,
        policy=NodePolicy(validate="none"),
    )
    flow = create(node.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(message("fail"))
    error = await flow.fetch()
    await flow.stop()
    assert "ended failed: boom" in error.message


async def test_cancelling_the_trace_cancels_the_remote_task(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    store = InMemoryStateStore()
    node = RemoteNode(
        transport=transport,
        skill="echo",
        agent_url=sdk_agent,
        name="remote",
        streaming=True,
        policy=NodePolicy(validate="none"),
    )
    flow = create(node.to(), state_store=store)
    flow.run()
    sent = message("block")
    await flow.emit(sent)

    async def bound() -> list[RemoteBinding]:
        return list(await store.list_bindings(sent.trace_id))

    (binding,) = await poll(bound)
    await flow.cancel(sent.trace_id)

    async with httpx.AsyncClient() as client:

        async def cancelled_remotely() -> bool:
            answer = await client.get(f"{sdk_agent}/_test/cancelled")
            return binding.task_id in answer.json()

        await poll(cancelled_remotely)
    await flow.stop()
    assert binding.agent_url == sdk_agent
