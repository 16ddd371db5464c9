"""`A2AHttpTransport` against an agent built with the official SDK, in another process:
card, unary, streaming, cancel, failures, auth, connect retries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from client_support import agent_process
from penguiflow_a2a._errors import AuthenticationError, TaskNotFoundError
from penguiflow_a2a.client import (
    A2AConnectionError,
    A2AHttpTransport,
    A2ATaskFailedError,
)

from penguiflow.errors import PenguiFlowError, UsageError
from penguiflow.remote import RemoteCallRequest, RemoteStreamEvent, RemoteTransport
from penguiflow.types import Headers, Message

TOKEN = "secret-token"


@pytest.fixture(scope="module")
def sdk_agent() -> Iterator[str]:
    with agent_process("sdk_agent.py", "--token", TOKEN) as url:
        yield url


@pytest.fixture
async def transport() -> AsyncIterator[A2AHttpTransport]:
    async with A2AHttpTransport(bearer_token=TOKEN, timeout_s=20) as made:
        yield made


def call(url: str, text: str, *, skill: str = "echo", **extra: Any) -> RemoteCallRequest:
    message = Message(payload=text, headers=Headers(tenant="t1"), meta={"user_id": "u1"})
    return RemoteCallRequest(message=message, skill=skill, agent_url=url, **extra)


async def collect(transport: A2AHttpTransport, request: RemoteCallRequest) -> list[Any]:
    async with aclosing(transport.stream(request)) as events:
        return [event async for event in events]


def test_the_transport_is_a_remote_transport() -> None:
    assert isinstance(A2AHttpTransport(), RemoteTransport)


async def test_fetches_and_caches_the_agent_card(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    card = await transport.get_agent_card(sdk_agent)
    assert card.name == "SDK Test Agent"
    assert [skill.id for skill in card.skills] == ["echo", "numbers"]
    assert await transport.get_agent_card(sdk_agent + "/") is card  # cached
    assert await transport.get_agent_card(sdk_agent, refresh=True) is not card


async def test_unary_send_returns_the_artifact_and_ids(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    result = await transport.send(call(sdk_agent, "echo hello"))
    assert result.result == "echo:hello"
    assert result.task_id and result.context_id and result.agent_url == sdk_agent
    assert result.meta is not None and result.meta["state"] == "completed"


async def test_unary_data_parts_come_back_as_values(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    result = await transport.send(call(sdk_agent, "data", skill="numbers"))
    assert result.result == {"answer": 42, "skill": "numbers"}


async def test_discovery_calls_the_interface_the_card_names(sdk_agent: str) -> None:
    async with A2AHttpTransport(bearer_token=TOKEN, discover=True) as transport:
        result = await transport.send(call(sdk_agent, "echo via card"))
    assert result.result == "echo:via card"


async def test_an_input_request_is_returned_not_raised(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    result = await transport.send(call(sdk_agent, "ask"))
    assert result.result == "which city?"
    assert result.meta is not None and result.meta["state"] == "input-required"


@pytest.mark.parametrize(
    ("text", "state", "said"), [("fail", "failed", "boom"), ("reject", "rejected", "not for me")]
)
async def test_unary_failures_raise(
    sdk_agent: str, transport: A2AHttpTransport, text: str, state: str, said: str
) -> None:
    with pytest.raises(A2ATaskFailedError, match=said) as caught:
        await transport.send(call(sdk_agent, text))
    assert caught.value.state == state and caught.value.task_id
    assert isinstance(caught.value, PenguiFlowError)


async def test_streaming_relays_chunks_then_the_result(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    events = await collect(transport, call(sdk_agent, "stream 3"))
    texts = [event.text for event in events if event.text]
    assert texts == ["c0 ", "c1 ", "c2 "]
    final = events[-1]
    assert final.done and final.text == "" and final.result == "c0 c1 c2 "
    assert all(not event.done for event in events[:-1])
    # the first event already names the task, so a RemoteNode can bind and cancel it
    assert events[0].task_id == final.task_id and events[0].context_id == final.context_id
    chunk = next(event for event in events if event.text)
    assert chunk.meta == {
        "artifact_id": "stream",
        "artifact_name": None,
        "append": False,
        "last_chunk": False,
    }


@pytest.mark.parametrize(("text", "state"), [("fail", "failed"), ("reject", "rejected")])
async def test_a_stream_ending_in_failure_raises(
    sdk_agent: str, transport: A2AHttpTransport, text: str, state: str
) -> None:
    """Regression (PenguiFlow e3f646a): a stream that ended failed or rejected ended quietly,
    as if the agent had answered nothing."""
    seen: list[RemoteStreamEvent] = []
    with pytest.raises(A2ATaskFailedError) as caught:
        async with aclosing(transport.stream(call(sdk_agent, text))) as events:
            async for event in events:
                seen.append(event)
    assert caught.value.state == state
    assert not any(event.done for event in seen)


async def test_cancel_reaches_the_remote_task_and_ends_its_stream(
    sdk_agent: str, transport: A2AHttpTransport
) -> None:
    request = call(sdk_agent, "block")
    async with aclosing(transport.stream(request)) as events:
        first = await anext(events)
        assert first.task_id is not None
        await transport.cancel(agent_url=sdk_agent, task_id=first.task_id)
        with pytest.raises(A2ATaskFailedError) as caught:
            async for _ in events:
                pass
    assert caught.value.state == "canceled"
    async with httpx.AsyncClient() as client:
        cancelled = (await client.get(f"{sdk_agent}/_test/cancelled")).json()
    assert first.task_id in cancelled
    # a second cancel of a finished task is not an error
    await transport.cancel(agent_url=sdk_agent, task_id=first.task_id)


async def test_unknown_task_and_missing_token_raise_the_a2a_errors(sdk_agent: str) -> None:
    async with A2AHttpTransport(bearer_token=TOKEN) as transport:
        with pytest.raises(TaskNotFoundError, match=sdk_agent):
            await transport.cancel(agent_url=sdk_agent, task_id="no-such-task")
    async with A2AHttpTransport() as anonymous:
        with pytest.raises(AuthenticationError, match="bearer token"):
            await anonymous.send(call(sdk_agent, "echo x"))
        with pytest.raises(AuthenticationError):
            await collect(anonymous, call(sdk_agent, "stream 1"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class CountingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that fails the first `failures` connections, then passes on."""

    def __init__(self, failures: int, error: type[Exception] = httpx.ConnectError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("refused", request=request)  # type: ignore[call-arg]
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_connect_errors_are_retried(sdk_agent: str) -> None:
    counting = CountingTransport(failures=2)
    async with httpx.AsyncClient(transport=counting) as client:
        transport = A2AHttpTransport(
            bearer_token=TOKEN, client=client, connect_retries=2, retry_backoff_s=0
        )
        result = await transport.send(call(sdk_agent, "echo again"))
        await transport.aclose()
        assert not client.is_closed  # a shared client stays open
    assert result.result == "echo:again" and counting.calls == 3


async def test_other_errors_are_not_retried(sdk_agent: str) -> None:
    counting = CountingTransport(failures=1, error=httpx.ReadError)
    async with httpx.AsyncClient(transport=counting) as client:
        transport = A2AHttpTransport(bearer_token=TOKEN, client=client, retry_backoff_s=0)
        with pytest.raises(A2AConnectionError, match="not retried"):
            await transport.send(call(sdk_agent, "echo once"))
    assert counting.calls == 1


async def test_an_agent_that_is_down_raises_after_the_retries() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with A2AHttpTransport(connect_retries=1, retry_backoff_s=0) as transport:
        with pytest.raises(A2AConnectionError, match="after 2 tries") as caught:
            await transport.send(call(url, "echo"))
    assert isinstance(caught.value, ConnectionError) and caught.value.agent_url == url


async def test_a_closed_transport_says_so() -> None:
    transport = A2AHttpTransport()
    await transport.aclose()
    await transport.aclose()  # idempotent
    with pytest.raises(UsageError, match="closed"):
        await transport.send(call("http://127.0.0.1:9", "echo"))


async def test_timeouts_raise_timeout_errors(sdk_agent: str) -> None:
    async with A2AHttpTransport(bearer_token=TOKEN) as transport:
        task = asyncio.ensure_future(transport.send(call(sdk_agent, "block", timeout_s=0.2)))
        with pytest.raises(TimeoutError, match="did not answer"):
            await task
