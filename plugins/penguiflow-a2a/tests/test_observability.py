"""Trace context across an A2A call (issue 18): a flow's RemoteNode calls our server over
loopback HTTP; the request carries the client's remote.call span as `traceparent`, the
server's remote.call is its child, and the remote flow's node runs in the same trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from penguiflow_a2a.client import A2AHttpTransport
from penguiflow_a2a.server import create_a2a_app
from server_support import card_for, serve

from penguiflow import Message, Node, NodePolicy, create
from penguiflow.observability import Event
from penguiflow.remote import RemoteNode
from penguiflow.testing import collect_events
from penguiflow.tracecontext import SpanContext, current_span, root_span
from penguiflow.types import Headers

SEEN: list[dict[str, Any]] = []


def recording_flow() -> Any:
    async def remember(message: Message, ctx: Any) -> Message:
        SEEN.append({"span": current_span(), "traceparent": message.meta.get("traceparent")})
        return message.model_copy(update={"payload": f"seen {message.payload}"})

    return create(Node(remember, name="remember", policy=NodePolicy(validate="none")).to())


@pytest.fixture
def events() -> Iterator[list[Event]]:
    SEEN.clear()
    with collect_events() as seen:
        yield seen


def remote_calls(events: list[Event], side: str) -> list[Event]:
    return [e for e in events if e.qualified_name == "remote.call" and e.attributes["side"] == side]


async def test_one_trace_from_the_remote_node_through_the_agents_flow(events: list[Event]) -> None:
    def build(url: str) -> Any:
        return create_a2a_app(recording_flow, agent_card=card_for(url), base_url=url)

    async with serve(build) as url, A2AHttpTransport(timeout_s=20) as transport:
        node = RemoteNode(
            transport=transport,
            skill="shout",
            agent_url=url,
            name="remote",
            policy=NodePolicy(validate="none"),
        )
        flow = create(node.to())
        flow.run()
        sent = Message(payload="hello", headers=Headers(tenant="acme"))
        await flow.emit(sent)
        assert await flow.fetch() == "seen hello"
        await flow.stop()

    [client] = remote_calls(events, "client")
    [server] = remote_calls(events, "server")
    trace = root_span(sent.trace_id).trace_id
    assert client.span is not None and client.span.trace_id == trace
    assert client.trace_id == sent.trace_id and client.tenant == "acme"
    assert client.attributes["status"] == "ok" and client.attributes["agent_url"] == url
    assert client.attributes["remote_task_id"]  # the ids the agent gave, once known
    # The server's side is a child of the client's: the request carried its traceparent.
    assert server.span is not None and server.parent_span_id == client.span.span_id
    assert server.span.trace_id == trace and server.attributes["status"] == "ok"
    assert server.attributes["task_id"] == client.attributes["remote_task_id"]
    # The agent's flow ran inside that trace: its message carried the server's span.
    [seen] = SEEN
    assert SpanContext.parse(seen["traceparent"]) == server.span
    assert seen["span"] is not None and seen["span"].trace_id == trace


async def test_a_request_with_a_traceparent_runs_its_task_under_it(events: list[Event]) -> None:
    caller = root_span("e" * 32).child()

    def build(url: str) -> Any:
        return create_a2a_app(recording_flow, agent_card=card_for(url), base_url=url)

    body = {
        "message": {
            "role": "ROLE_USER",
            "messageId": "m-1",
            "parts": [{"text": "ping"}],
            "metadata": {"skill": "shout"},
        }
    }
    async with serve(build) as url, httpx.AsyncClient(timeout=30, trust_env=False) as http:
        answer = await http.post(
            f"{url}/message:send",
            json=body,
            headers={"A2A-Version": "1.0", "traceparent": caller.traceparent},
        )
    assert answer.status_code == 200, answer.text
    [server] = remote_calls(events, "server")
    assert server.parent_span_id == caller.span_id and server.span is not None
    assert server.span.trace_id == caller.trace_id
    # A malformed header is ignored, never an error.
    assert SpanContext.parse("00-zz-bad") is None
