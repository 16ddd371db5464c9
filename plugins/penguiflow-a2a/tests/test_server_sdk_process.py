"""The official SDK's client against our server running in another process (`our_agent.py`,
uvicorn on 127.0.0.1), as a deployed agent is met: card, send, stream, get, list, cancel and
subscribe over both bindings, every answer parsed by the SDK's own models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import a2a_pb2 as pb
from client_support import agent_process

BINDINGS = ["HTTP+JSON", "JSONRPC"]
AUTH = {"Authorization": "Bearer secret-token"}


@pytest.fixture(scope="module")
def agent() -> Iterator[str]:
    with agent_process("our_agent.py") as url:
        yield url


def _request(text: str) -> pb.SendMessageRequest:
    message = pb.Message(message_id=f"m-{text[:12]}", role=pb.ROLE_USER, parts=[pb.Part(text=text)])
    return pb.SendMessageRequest(message=message)


async def _client(url: str, binding: str, http: httpx.AsyncClient, *, streaming: bool) -> Any:
    config = ClientConfig(
        streaming=streaming, httpx_client=http, supported_protocol_bindings=[binding]
    )
    return await create_client(url, client_config=config)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_sdk_client_sends_gets_and_lists_on_a_server_process(
    agent: str, binding: str
) -> None:
    async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
        card = await A2ACardResolver(http, agent).get_agent_card()
        assert card.name == "PenguiFlow Test Agent" and card.skills[0].id == "echo"
        client = await _client(agent, binding, http, streaming=False)
        (event,) = [e async for e in client.send_message(_request(f"hello {binding}"))]
        task = event.task
        assert task.status.state == pb.TASK_STATE_COMPLETED
        assert "echo hello" in task.artifacts[-1].parts[0].text
        fetched = await client.get_task(pb.GetTaskRequest(id=task.id))
        assert fetched.status.state == pb.TASK_STATE_COMPLETED
        listed = await client.list_tasks(pb.ListTasksRequest())
        assert task.id in [t.id for t in listed.tasks]
        await client.close()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_sdk_client_streams_from_a_server_process(agent: str, binding: str) -> None:
    async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
        client = await _client(agent, binding, http, streaming=True)
        events = [e async for e in client.send_message(_request("words one two three"))]
        chunks = [
            e.artifact_update.artifact.parts[0].text
            for e in events
            if e.HasField("artifact_update") and e.artifact_update.artifact.name == "stream"
        ]
        assert chunks == ["one", "two", "three"]
        assert events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
        await client.close()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_sdk_client_cancels_and_subscribes_on_a_server_process(
    agent: str, binding: str
) -> None:
    async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
        client = await _client(agent, binding, http, streaming=True)
        stream = client.send_message(_request("block"))
        first = await anext(stream)
        task_id = first.task.id
        subscription = client.subscribe(pb.SubscribeToTaskRequest(id=task_id))
        snapshot = await anext(subscription)
        assert snapshot.task.id == task_id
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=task_id))
        assert canceled.status.state == pb.TASK_STATE_CANCELED
        rest = [e async for e in subscription]
        assert rest[-1].status_update.status.state == pb.TASK_STATE_CANCELED
        rest = [e async for e in stream]
        assert rest[-1].status_update.status.state == pb.TASK_STATE_CANCELED
        task = await client.get_task(pb.GetTaskRequest(id=task_id))
        assert task.status.state == pb.TASK_STATE_CANCELED
        await client.close()
