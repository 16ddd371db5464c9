"""How `A2AHttpTransport.stream` ends on answers a real agent rarely gives: a stream cut
before a final state, an error event, an event that is not JSON. Served by an in-memory
httpx transport, since no well-behaved server produces them on demand."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from penguiflow_a2a._errors import InternalError
from penguiflow_a2a.client import A2AHttpTransport, A2AProtocolError, A2ATaskFailedError

from penguiflow.remote import RemoteCallRequest
from penguiflow.types import Headers, Message

URL = "http://agent.test"
TASK = {"task": {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}}


def sse(*events: tuple[str | None, str]) -> httpx.MockTransport:
    body = "".join(
        (f"event: {name}\n" if name else "") + f"data: {data}\n\n" for name, data in events
    )

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["A2A-Version"] == "1.0"
        assert request.headers["Accept"] == "text/event-stream"
        sent = json.loads(request.content)
        assert sent["message"]["metadata"]["skill"] == "s"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(answer)


async def run(mock: httpx.MockTransport) -> list[Any]:
    async with httpx.AsyncClient(transport=mock) as client:
        transport = A2AHttpTransport(client=client)
        request = RemoteCallRequest(
            message=Message(payload="x", headers=Headers(tenant="t")), skill="s", agent_url=URL
        )
        async with aclosing(transport.stream(request)) as events:
            return [event async for event in events]


async def test_a_stream_cut_before_a_final_state_raises() -> None:
    """Regression (PenguiFlow e3f646a): a stream that stopped early looked like an answer."""
    with pytest.raises(A2ATaskFailedError, match="ended before the task t1") as caught:
        await run(sse((None, json.dumps(TASK))))
    assert caught.value.state == "working" and caught.value.task_id == "t1"


async def test_an_error_event_raises_the_a2a_error() -> None:
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INTERNAL_ERROR"}
    error = {"error": {"code": 500, "status": "INTERNAL", "message": "kaput", "details": [info]}}
    with pytest.raises(InternalError, match="kaput"):
        await run(sse((None, json.dumps(TASK)), ("error", json.dumps(error))))


async def test_an_event_that_is_not_json_raises() -> None:
    with pytest.raises(A2AProtocolError, match="not JSON"):
        await run(sse((None, "{nope")))
    with pytest.raises(A2AProtocolError, match=r"not A2A 1\.x's shape"):
        await run(sse((None, json.dumps({"task": {"id": "t1"}}))))


async def test_a_canceled_task_snapshot_raises() -> None:
    canceled = {"task": {**TASK["task"], "status": {"state": "TASK_STATE_CANCELED"}}}
    with pytest.raises(A2ATaskFailedError, match="ended canceled"):
        await run(sse((None, json.dumps(canceled))))


def test_the_client_module_exports_what_it_documents() -> None:
    import penguiflow_a2a.client as client

    assert sorted(client.__all__) == [
        "A2AClientError",
        "A2AConnectionError",
        "A2AHttpTransport",
        "A2AProtocolError",
        "A2ATaskFailedError",
        "A2ATimeoutError",
        "a2a_agent_tools",
    ]
    for name in client.__all__:
        assert getattr(client, name).__module__.startswith("penguiflow_a2a.")
    for name in client.__all__[:-1]:
        if name.endswith("Error"):
            assert issubclass(getattr(client, name), client.A2AClientError)
