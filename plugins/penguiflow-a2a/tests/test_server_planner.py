"""A ReactPlanner served as an A2A agent, driven by the official SDK's client: a pause is
input-required and a follow-up on the task resumes it; streamed chunks; cancel; failures;
the resume token kept on the server across a restart; `penguiflow a2a serve` on a planner."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types import a2a_pb2 as pb
from a2a_planner_targets import HUMAN_YES, Probe, make_planner
from google.protobuf.json_format import MessageToDict
from penguiflow_a2a.server import PlannerExecutor, create_a2a_app
from server_support import CARD, serve
from test_command import serving

from penguiflow.errors import ConfigurationError
from penguiflow.state.sqlite import SQLiteStateStore

BINDINGS = ["HTTP+JSON", "JSONRPC"]


def _request(text: str, task_id: str = "", **metadata: Any) -> pb.SendMessageRequest:
    message = pb.Message(message_id="m-" + text[:8], role=pb.ROLE_USER, parts=[pb.Part(text=text)])
    if task_id:
        message.task_id = task_id
    if metadata:
        message.metadata.update(metadata)
    return pb.SendMessageRequest(message=message)


async def _client(url: str, binding: str, http: httpx.AsyncClient, streaming: bool) -> Any:
    config = ClientConfig(
        streaming=streaming, httpx_client=http, supported_protocol_bindings=[binding]
    )
    return await create_client(url, client_config=config)


def _app(planner: Any, **kw: Any) -> Any:
    return lambda url: create_a2a_app(planner, agent_card=CARD, base_url=url, **kw)


def _data(part: pb.Part) -> Any:
    return MessageToDict(part)["data"]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_pause_is_input_required_and_a_follow_up_resumes_it(binding: str) -> None:
    async with (
        serve(_app(make_planner())) as url,
        httpx.AsyncClient(timeout=30, trust_env=False) as http,
    ):
        client = await _client(url, binding, http, streaming=False)
        [event] = [e async for e in client.send_message(_request("#pause# please"))]
        task = event.task
        assert task.status.state == pb.TASK_STATE_INPUT_REQUIRED
        text, data = task.status.message.parts
        assert "approval_required" in text.text
        assert _data(data) == {"reason": "approval_required", "payload": {"what": "refund 30"}}
        # The resume token stays on the server: nothing on the wire carries it.
        raw = (await http.get(f"{url}/tasks/{task.id}")).text
        assert "token" not in raw.lower()

        [event] = [e async for e in client.send_message(_request(HUMAN_YES, task.id))]
        done = event.task
        assert done.id == task.id
        assert done.status.state == pb.TASK_STATE_COMPLETED
        answer = next(a for a in done.artifacts if a.name == "answer")
        assert answer.parts[0].text == "approved and done"
        await client.close()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_tool_chunks_stream_as_artifact_updates(binding: str) -> None:
    async with (
        serve(_app(make_planner())) as url,
        httpx.AsyncClient(timeout=30, trust_env=False) as http,
    ):
        client = await _client(url, binding, http, streaming=True)
        events = [e async for e in client.send_message(_request("#stream# now"))]
        assert events[0].WhichOneof("payload") == "task"
        pieces = [
            (e.artifact_update.artifact.parts[0].text, e.artifact_update.append)
            for e in events
            if e.HasField("artifact_update") and e.artifact_update.artifact.name == "stream"
        ]
        assert pieces == [("one", False), ("two", True), ("three", True)]
        assert events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
        task = await client.get_task(pb.GetTaskRequest(id=events[0].task.id))
        answer = next(a for a in task.artifacts if a.name == "answer")
        assert answer.parts[0].text == "talked"
        assert _data(answer.parts[1]) == {"words": 3}  # the structured payload
        await client.close()


async def test_the_answer_streams_while_the_model_writes_it() -> None:
    planner = make_planner(stream_final_response=True)
    async with serve(_app(planner)) as url, httpx.AsyncClient(timeout=30) as http:
        client = await _client(url, "HTTP+JSON", http, streaming=True)
        events = [e async for e in client.send_message(_request("just answer"))]
        pieces = [
            e.artifact_update
            for e in events
            if e.HasField("artifact_update") and e.artifact_update.artifact.name == "answer-stream"
        ]
        assert "".join(p.artifact.parts[0].text for p in pieces) == "plain answer"
        assert pieces[-1].last_chunk and len(pieces) > 1
        assert events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
        await client.close()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_cancel_cancels_the_run(binding: str) -> None:
    probe = Probe()
    async with (
        serve(_app(make_planner(probe))) as url,
        httpx.AsyncClient(timeout=30, trust_env=False) as http,
    ):
        client = await _client(url, binding, http, streaming=True)
        stream = client.send_message(_request("#block# it"))
        first = await anext(stream)
        await asyncio.wait_for(probe.entered.wait(), 30)
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=first.task.id))
        assert canceled.status.state == pb.TASK_STATE_CANCELED
        await asyncio.wait_for(probe.cancelled.wait(), 30)
        rest = [e async for e in stream]
        assert rest[-1].status_update.status.state == pb.TASK_STATE_CANCELED
        await client.close()


async def test_a_run_without_an_answer_fails_with_the_reason() -> None:
    async with (
        serve(_app(make_planner())) as url,
        httpx.AsyncClient(timeout=30, trust_env=False) as http,
    ):
        client = await _client(url, "HTTP+JSON", http, streaming=False)
        [event] = [e async for e in client.send_message(_request("#fail# now"))]
        assert event.task.status.state == pb.TASK_STATE_FAILED
        text = event.task.status.message.parts[0].text
        assert "no_path" in text and "the model is down" in text
        await client.close()


async def test_tools_see_the_task_tenant_and_skill() -> None:
    probe = Probe()
    async with (
        serve(_app(make_planner(probe))) as url,
        httpx.AsyncClient(timeout=30, trust_env=False) as http,
    ):
        client = await _client(url, "JSONRPC", http, streaming=False)
        request = _request("#context# look", skill="refunds", caller="billing")
        [event] = [e async for e in client.send_message(request)]
        assert event.task.status.state == pb.TASK_STATE_COMPLETED
        [seen] = probe.tool_contexts
        assert seen["trace_id"] == seen["a2a_task_id"] == event.task.id
        assert seen["session_id"] == event.task.context_id
        assert seen["tenant_id"] == "default"
        assert seen["a2a_skill"] == "refunds"
        assert seen["a2a_metadata"] == {"skill": "refunds", "caller": "billing"}
        await client.close()


async def test_a_restarted_server_resumes_a_paused_task(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    store = SQLiteStateStore(db)
    planner = make_planner(state_store=store)
    async with serve(_app(planner, state_store=store)) as url, httpx.AsyncClient() as http:
        client = await _client(url, "HTTP+JSON", http, streaming=False)
        [event] = [e async for e in client.send_message(_request("#pause# please"))]
        task_id = event.task.id
        assert event.task.status.state == pb.TASK_STATE_INPUT_REQUIRED
        await client.close()
    await planner.aclose()
    await store.aclose()
    reader = SQLiteStateStore(db)
    stored = json.dumps(await reader.list_tasks("a2a:default"))
    await reader.aclose()
    assert "planner_resume_token" in stored  # kept with the task, on the server

    store = SQLiteStateStore(db)
    planner = make_planner(state_store=store)
    async with serve(_app(planner, state_store=store)) as url, httpx.AsyncClient() as http:
        client = await _client(url, "HTTP+JSON", http, streaming=False)
        [event] = [e async for e in client.send_message(_request(HUMAN_YES, task_id))]
        assert event.task.status.state == pb.TASK_STATE_COMPLETED
        assert event.task.artifacts[-1].parts[0].text == "approved and done"
        await client.close()
    await planner.aclose()
    await store.aclose()


def test_planner_executor_refuses_other_objects() -> None:
    with pytest.raises(ConfigurationError, match="needs a ReactPlanner"):
        PlannerExecutor(object())
    planner = make_planner()
    PlannerExecutor(planner)
    PlannerExecutor(planner)
    assert len(planner.middlewares) == 1  # one relay however many executors share it


async def test_the_command_serves_a_planner_factory() -> None:
    async with (
        serving("a2a_planner_targets:build_planner", "--no-auth") as (url, _),
        httpx.AsyncClient(timeout=30, trust_env=False) as http,
    ):
        client = await _client(url, "HTTP+JSON", http, streaming=False)
        card = (await http.get(f"{url}/.well-known/agent-card.json")).json()
        assert "planner" in card["description"]
        [event] = [e async for e in client.send_message(_request("#pause# please"))]
        assert event.task.status.state == pb.TASK_STATE_INPUT_REQUIRED
        [event] = [e async for e in client.send_message(_request(HUMAN_YES, event.task.id))]
        assert event.task.status.state == pb.TASK_STATE_COMPLETED
        await client.close()
