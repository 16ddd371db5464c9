"""The official SDK's client against our server (uvicorn on 127.0.0.1), over both bindings."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types import a2a_pb2 as pb
from penguiflow_a2a.server import create_a2a_app
from server_support import CARD, Blocker, serve, shout_flow, stream_flow

BINDINGS = ["HTTP+JSON", "JSONRPC"]


def _request(text: str, task_id: str = "") -> pb.SendMessageRequest:
    message = pb.Message(message_id="m-" + text[:8], role=pb.ROLE_USER, parts=[pb.Part(text=text)])
    if task_id:
        message.task_id = task_id
    return pb.SendMessageRequest(message=message)


async def _client(url: str, binding: str, http: httpx.AsyncClient, streaming: bool) -> Any:
    config = ClientConfig(
        streaming=streaming, httpx_client=http, supported_protocol_bindings=[binding]
    )
    return await create_client(url, client_config=config)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_sdk_card_send_get_list(binding: str) -> None:
    def build(url: str) -> Any:
        return create_a2a_app(shout_flow(), agent_card=CARD, base_url=url)

    async with serve(build) as url, httpx.AsyncClient(timeout=30) as http:
        client = await _client(url, binding, http, streaming=False)
        events = [e async for e in client.send_message(_request("hello there"))]
        assert len(events) == 1
        task = events[0].task
        assert task.status.state == pb.TASK_STATE_COMPLETED
        assert task.artifacts[0].parts[0].text == "HELLO THERE"
        fetched = await client.get_task(pb.GetTaskRequest(id=task.id, history_length=1))
        assert fetched.id == task.id and fetched.status.state == pb.TASK_STATE_COMPLETED
        assert len(fetched.history) == 1
        listed = await client.list_tasks(pb.ListTasksRequest())
        assert [t.id for t in listed.tasks] == [task.id]
        assert listed.total_size == 1
        await client.close()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_sdk_streams_chunks_as_artifact_updates(binding: str) -> None:
    def build(url: str) -> Any:
        return create_a2a_app(stream_flow(), agent_card=CARD, base_url=url)

    async with serve(build) as url, httpx.AsyncClient(timeout=30) as http:
        client = await _client(url, binding, http, streaming=True)
        events = [e async for e in client.send_message(_request("one two three"))]
        kinds = [e.WhichOneof("payload") for e in events]
        assert kinds[0] == "task"
        chunks = [
            e.artifact_update.artifact.parts[0].text
            for e in events
            if e.HasField("artifact_update") and e.artifact_update.artifact.name == "stream"
        ]
        assert chunks == ["one", "two", "three"]
        appends = [
            e.artifact_update.append
            for e in events
            if e.HasField("artifact_update") and e.artifact_update.artifact.name == "stream"
        ]
        assert appends == [False, True, True]
        last = events[-1]
        assert last.status_update.status.state == pb.TASK_STATE_COMPLETED
        task = await client.get_task(pb.GetTaskRequest(id=events[0].task.id))
        stream_artifact = next(a for a in task.artifacts if a.name == "stream")
        assert [p.text for p in stream_artifact.parts] == ["one", "two", "three"]
        await client.close()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_sdk_cancel_reaches_the_trace_and_subscribe_sees_it(binding: str) -> None:
    blocker = Blocker()

    def build(url: str) -> Any:
        return create_a2a_app(blocker.flow(), agent_card=CARD, base_url=url)

    async with serve(build) as url, httpx.AsyncClient(timeout=30) as http:
        client = await _client(url, binding, http, streaming=True)
        stream = client.send_message(_request("wait"))
        first = await anext(stream)
        task_id = first.task.id
        await blocker.started.wait()
        subscription = client.subscribe(pb.SubscribeToTaskRequest(id=task_id))
        snapshot = await anext(subscription)
        assert snapshot.task.id == task_id
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=task_id))
        assert canceled.status.state == pb.TASK_STATE_CANCELED
        await asyncio.wait_for(blocker.cancelled.wait(), 30)
        rest = [e async for e in subscription]
        assert rest[-1].status_update.status.state == pb.TASK_STATE_CANCELED
        rest = [e async for e in stream]
        assert rest[-1].status_update.status.state == pb.TASK_STATE_CANCELED
        task = await client.get_task(pb.GetTaskRequest(id=task_id))
        assert task.status.state == pb.TASK_STATE_CANCELED
        await client.close()
