"""Remote nodes (spec §1.14): unary and streaming calls, bindings, cancellation, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from conftest import EventLog

from penguiflow.core import create
from penguiflow.node import NodePolicy
from penguiflow.remote import (
    RemoteCallRequest,
    RemoteCallResult,
    RemoteNode,
    RemoteStreamEvent,
    RemoteTransport,
)
from penguiflow.state import RemoteBinding, StoredEvent
from penguiflow.state.in_memory import InMemoryStateStore
from penguiflow.types import Message


class FakeTransport(RemoteTransport):
    """Our own stand-in agent: scripted replies, recorded requests and cancels."""

    def __init__(
        self, *, fail: bool = False, block: bool = False, context_id: str | None = "ctx-1"
    ) -> None:
        self.requests: list[RemoteCallRequest] = []
        self.cancels: list[tuple[str, str]] = []
        self.fail = fail
        self.block = block
        self.context_id = context_id
        self.started = asyncio.Event()

    async def send(self, request: RemoteCallRequest) -> RemoteCallResult:
        self.requests.append(request)
        if self.fail:
            raise ConnectionError("agent down")
        return RemoteCallResult(
            result={"answer": request.message.payload},
            context_id=self.context_id,
            task_id="task-1",
        )

    async def stream(self, request: RemoteCallRequest) -> AsyncIterator[RemoteStreamEvent]:
        self.requests.append(request)
        yield RemoteStreamEvent(text="hel", task_id="task-2", context_id="ctx-2", meta={"b": 1})
        self.started.set()
        if self.block:
            await asyncio.sleep(5)
        yield RemoteStreamEvent(text="lo", done=True)
        yield RemoteStreamEvent(result="hello")

    async def cancel(self, *, agent_url: str, task_id: str) -> None:
        self.cancels.append((agent_url, task_id))


async def test_unary_call_returns_result_and_saves_binding(msg_factory: Any) -> None:
    store = InMemoryStateStore()
    transport = FakeTransport()
    node = RemoteNode(
        transport=transport,
        skill="search",
        agent_url="http://agent",
        name="remote",
        policy=NodePolicy(timeout_s=3),
    )
    log = EventLog()
    flow = create(node.to(), state_store=store, middlewares=[log])
    flow.run()
    message = msg_factory("q", meta={"k": "v"})
    await flow.emit(message)
    assert await flow.fetch() == {"answer": "q"}
    await flow.stop()
    request = transport.requests[0]
    assert request.skill == "search" and request.metadata == {"k": "v"} and request.timeout_s == 3
    bindings: Sequence[RemoteBinding] = await store.list_bindings(message.trace_id)
    assert bindings[0].task_id == "task-1" and bindings[0].remote_skill == "search"
    assert bindings[0].tenant_id == "test" and bindings[0].agent_url == "http://agent"
    start = log.of("remote_call_start")[0]
    assert (
        start.extra["remote_transport"] == "FakeTransport"
        and start.extra["remote_request_bytes"] > 0
    )
    success = log.of("remote_call_success")[0]
    assert (
        success.extra["remote_status"] == "success" and success.extra["remote_task_id"] == "task-1"
    )
    assert success.extra["remote_stream_events"] == 0


async def remote_binding_for(
    msg_factory: Any, transport: FakeTransport, meta: dict[str, Any]
) -> RemoteBinding:
    store = InMemoryStateStore()
    node = RemoteNode(
        transport=transport,
        skill="search",
        agent_url="http://agent",
        name="remote",
        policy=NodePolicy(validate="none"),
    )
    flow = create(node.to(), state_store=store)
    flow.run()
    message = msg_factory("q", meta=meta)
    await flow.emit(message)
    await flow.fetch()
    await flow.stop()
    (binding,) = await store.list_bindings(message.trace_id)
    return binding


async def test_the_binding_carries_the_routing_context(msg_factory: Any) -> None:
    """Regression: the binding lacked the caller's session and user (PenguiFlow 3.11 saves
    them) and its metadata named the node besides the source."""
    transport = FakeTransport()
    meta = {"session_id": "sess-9", "user_id": 42, "k": "v"}
    binding = await remote_binding_for(msg_factory, transport, meta)
    assert binding.router_session_id == "sess-9" and binding.user_id == "42"
    assert binding.metadata == {"source": "remote_node"}
    assert binding.context_id == "ctx-1" and binding.tenant_id == "test"
    assert binding.last_remote_task_id == "task-1" and binding.remote_skill == "search"
    assert transport.requests[0].context_id is None  # nothing asked for: nothing sent
    # blank values count as absent
    blank = await remote_binding_for(msg_factory, FakeTransport(), {"session_id": "  "})
    assert blank.router_session_id is None and blank.user_id is None


async def test_a_message_continues_the_remote_context_it_names(msg_factory: Any) -> None:
    """Regression: `meta["remote_context_id"]` was not sent with the request, nor recorded
    when the agent's result named no context."""
    transport = FakeTransport(context_id=None)
    meta = {"remote_context_id": "conv-7", "remote_task_id": "task-0"}
    binding = await remote_binding_for(msg_factory, transport, meta)
    assert transport.requests[0].context_id == "conv-7"
    assert transport.requests[0].task_id == "task-0"
    assert binding.context_id == "conv-7"
    # The agent's own context id, when it gives one, is the one recorded.
    answered = await remote_binding_for(msg_factory, FakeTransport(), meta)
    assert answered.context_id == "ctx-1"


async def test_streaming_call_emits_chunks(msg_factory: Any) -> None:
    transport = FakeTransport()
    node = RemoteNode(
        transport=transport,
        skill="chat",
        agent_url="http://agent",
        name="remote",
        streaming=True,
        policy=NodePolicy(validate="none"),
    )
    log = EventLog()
    flow = create(node.to(), middlewares=[log])
    flow.run()
    await flow.emit(msg_factory("q"))
    items = [await flow.fetch() for _ in range(3)]
    await flow.stop()
    assert [i.payload.text for i in items[:2]] == ["hel", "lo"] and items[2] == "hello"
    events = log.of("remote_stream_event")
    assert [e.extra["remote_stream_seq"] for e in events] == [0, 1]
    assert events[0].extra["remote_chunk_meta_keys"] == ["b"]
    assert log.of("remote_call_success")[0].extra["remote_stream_events"] == 3


async def test_cancel_reaches_the_remote_task(msg_factory: Any) -> None:
    transport = FakeTransport(block=True)
    node = RemoteNode(
        transport=transport, skill="chat", agent_url="http://agent", name="remote", streaming=True
    )
    log = EventLog()
    flow = create(node.to(), middlewares=[log])
    flow.run()
    message = msg_factory("q")
    await flow.emit(message)
    await transport.started.wait()
    await flow.cancel(message.trace_id)
    for _ in range(100):
        if log.of("remote_call_cancelled"):
            break
        await asyncio.sleep(0.005)
    await flow.stop()
    assert transport.cancels == [("http://agent", "task-2")]
    assert log.of("remote_call_cancelled")[0].extra["remote_cancel_reason"] == "trace_cancel"


async def test_errors_are_recorded_and_become_flow_errors(msg_factory: Any) -> None:
    node = RemoteNode(
        transport=FakeTransport(fail=True), skill="s", agent_url="http://agent", name="remote"
    )
    log = EventLog()
    flow = create(node.to(), middlewares=[log], emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(msg_factory("q"))
    error = await flow.fetch()
    await flow.stop()
    assert error.code == "NODE_EXCEPTION" and "agent down" in error.message
    assert log.of("remote_call_error")[0].extra["remote_status"] == "error"


async def test_requires_message_input() -> None:
    node = RemoteNode(transport=FakeTransport(), skill="s", agent_url="u", name="remote")
    with pytest.raises(TypeError, match=r"Remote nodes require penguiflow\.types\.Message inputs"):
        await node.func("raw", None)


def test_stored_event_type_is_importable() -> None:
    assert StoredEvent.__name__ == "StoredEvent" and Message
