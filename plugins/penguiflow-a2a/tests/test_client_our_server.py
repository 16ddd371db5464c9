"""Our client against our own server in another process: a flow whose middle node is a
`RemoteNode` calling a PenguiFlow agent; the binding is stored, chunks stream through, and
cancelling the outer trace cancels the remote task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from client_support import agent_process
from penguiflow_a2a.client import A2AHttpTransport

from penguiflow import Message, Node, NodePolicy
from penguiflow.core import create
from penguiflow.remote import RemoteNode
from penguiflow.state import RemoteBinding
from penguiflow.state.in_memory import InMemoryStateStore
from penguiflow.types import Headers

TOKEN = "secret-token"
DEADLINE_S = 20.0
HEADERS = {"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"}


@pytest.fixture(scope="module")
def our_agent() -> Iterator[str]:
    with agent_process("our_agent.py") as url:
        yield url


@pytest.fixture
async def transport() -> AsyncIterator[A2AHttpTransport]:
    async with A2AHttpTransport(bearer_token=TOKEN, timeout_s=20) as made:
        yield made


async def poll(check: Any) -> Any:
    """`await check()` until it returns something truthy, failing after `DEADLINE_S`."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.02)


def three_nodes(remote: Node) -> Any:
    """before -> remote -> after: the remote agent is the middle node."""

    async def before(message: Message, ctx: Any) -> Message:
        return message

    async def after(message: Any, ctx: Any) -> Any:
        return f"after({message})"

    policy = NodePolicy(validate="none")
    first = Node(before, name="before", policy=policy)
    last = Node(after, name="after", policy=policy)
    return first.to(remote), remote.to(last), last.to()


def remote_node(transport: A2AHttpTransport, url: str, *, streaming: bool) -> Node:
    return RemoteNode(
        transport=transport,
        skill="echo",
        agent_url=url,
        name="remote",
        streaming=streaming,
        policy=NodePolicy(validate="none"),
    )


async def test_unary_and_streaming_through_our_server(
    our_agent: str, transport: A2AHttpTransport
) -> None:
    result = await transport.send(
        _request(our_agent, "hello")  # the flow answers "echo <payload>"
    )
    assert result.result == "echo hello" and result.task_id
    # a flow that streams: the unary result is the answer, not the chunks before it
    assert (await transport.send(_request(our_agent, "words a b"))).result == "echo words a b"
    events = [event async for event in transport.stream(_request(our_agent, "words a b"))]
    # the streamed words, then the result artifact: every artifact's text is relayed
    assert [event.text for event in events if event.text] == ["a", "b", "echo words a b"]
    assert [(event.meta or {})["artifact_name"] for event in events if event.text] == [
        "stream",
        "stream",
        "result",
    ]
    assert events[-1].done and events[-1].result == "echo words a b"


def _request(url: str, text: str) -> Any:
    from penguiflow.remote import RemoteCallRequest

    return RemoteCallRequest(
        message=Message(payload=text, headers=Headers(tenant="acme")), skill="echo", agent_url=url
    )


async def test_a_middle_remote_node_stores_its_binding(
    our_agent: str, transport: A2AHttpTransport
) -> None:
    store = InMemoryStateStore()
    flow = create(
        *three_nodes(remote_node(transport, our_agent, streaming=False)), state_store=store
    )
    flow.run()
    sent = Message(payload="hi", headers=Headers(tenant="acme"))
    await flow.emit(sent)
    assert await flow.fetch() == "after(echo hi)"
    await flow.stop()
    (binding,) = await store.list_bindings(sent.trace_id)
    assert binding.agent_url == our_agent and binding.task_id and binding.context_id
    async with httpx.AsyncClient() as client:
        task = (await client.get(f"{our_agent}/tasks/{binding.task_id}", headers=HEADERS)).json()
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_cancelling_the_outer_trace_cancels_the_remote_task(
    our_agent: str, transport: A2AHttpTransport
) -> None:
    store = InMemoryStateStore()
    flow = create(
        *three_nodes(remote_node(transport, our_agent, streaming=True)), state_store=store
    )
    flow.run()
    sent = Message(payload="block", headers=Headers(tenant="acme"))
    await flow.emit(sent)

    async def bound() -> list[RemoteBinding]:
        return list(await store.list_bindings(sent.trace_id))

    (binding,) = await poll(bound)
    await flow.cancel(sent.trace_id)
    async with httpx.AsyncClient() as client:

        async def remote_state() -> str | None:
            answer = await client.get(f"{our_agent}/tasks/{binding.task_id}", headers=HEADERS)
            state = answer.json()["status"]["state"]
            return state if state == "TASK_STATE_CANCELED" else None

        assert await poll(remote_state) == "TASK_STATE_CANCELED"
    await flow.stop()
