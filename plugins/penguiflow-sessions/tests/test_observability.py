"""session.task events and trace context on the session server (issue 18), over loopback
HTTP: a turn started by a request with a `traceparent` runs in the caller's trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _server_support import TOKENS, auth, serving, wait_for
from penguiflow_sessions.server import BearerTokenAuthenticator, create_app

from penguiflow.observability import Event
from penguiflow.testing import collect_events
from penguiflow.tracecontext import SpanContext, current_span, root_span

SEEN: list[SpanContext | None] = []


async def turn(runtime: Any) -> Any:
    SEEN.append(current_span())
    if runtime.state.context_snapshot.query == "fail":
        raise RuntimeError("the turn broke")
    return {"answer": "done"}


@pytest.fixture
def events() -> Iterator[list[Event]]:
    SEEN.clear()
    with collect_events() as seen:
        yield seen


def tasks(events: list[Event]) -> list[Event]:
    return [e for e in events if e.qualified_name == "session.task"]


def ended(events: list[Event]) -> list[Event]:
    return [e for e in tasks(events) if e.duration_ms is not None]


async def post(query: str, headers: dict[str, str], events: list[Event]) -> None:
    app = create_app(authenticator=BearerTokenAuthenticator(TOKENS), turn_pipeline=turn)
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        answer = await client.post(
            "/sessions/chat/messages",
            json={"query": query},
            headers={**auth("alice-token-1"), **headers},
        )
        assert answer.status_code == 202, answer.text
        await wait_for(lambda: bool(ended(events)))


async def test_a_turn_is_a_session_task_in_the_callers_trace(events: list[Event]) -> None:
    caller = root_span("b" * 32).child()
    await post("hello", {"traceparent": caller.traceparent}, events)
    [task] = ended(events)
    assert task.attributes["state"] == "complete" and task.attributes["status"] == "ok"
    assert task.attributes["kind"] == "FOREGROUND" and task.tenant == "acme"
    assert task.span is not None and task.parent_span_id == caller.span_id
    assert task.span.trace_id == caller.trace_id
    # The pipeline ran inside the task's span; the states it passed through are moments in it.
    assert [task.span] == SEEN
    passing = [e for e in tasks(events) if e.duration_ms is None]
    assert [e.attributes["state"] for e in passing] == ["running"]
    assert all(e.span == task.span for e in passing)


async def test_a_failed_turn_ends_failed_and_is_an_error(events: list[Event]) -> None:
    await post("fail", {}, events)
    [task] = ended(events)
    assert task.attributes["state"] == "failed" and task.attributes["status"] == "error"
    assert "the turn broke" in task.attributes["error"]
    # Without a traceparent the task hangs under its own trace's root span.
    assert task.span is not None
