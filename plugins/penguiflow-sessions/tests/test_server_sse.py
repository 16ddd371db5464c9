"""The SSE endpoint over real loopback HTTP: event format, filters, Last-Event-ID resume."""

from __future__ import annotations

import httpx
import pytest
from _server_support import (
    ALICE,
    TOKENS,
    SseReader,
    auth,
    eventually,
    host_of,
    serving,
    spawn_driven,
)
from penguiflow_sessions.models import UpdateType
from penguiflow_sessions.server import BearerTokenAuthenticator, ServerLimits, create_app


def _app(**limits: float) -> object:
    return create_app(
        authenticator=BearerTokenAuthenticator(TOKENS),
        limits=ServerLimits(**limits),  # type: ignore[arg-type]
    )


async def _progress(reader: SseReader, task_id: str, count: int) -> list[dict]:
    """The next `count` PROGRESS events of `task_id`, skipping its other updates."""
    seen = []
    while len(seen) < count:
        event = await reader.next_event()
        assert event.id == event.data["update_id"]
        if event.data["task_id"] == task_id and event.data["update_type"] == "PROGRESS":
            seen.append(event.data)
    return seen


async def test_updates_arrive_as_events_with_their_cursor_as_id() -> None:
    app = _app()
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        url = "/sessions/chat/events"
        async with client.stream("GET", url, headers=auth("alice-token-1")) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = SseReader(response)
            await reader.until_comment("subscribed")
            task_id, driven = await spawn_driven(host_of(app), ALICE, "chat")
            for n in range(5):
                driven.emit({"n": n})
            got = await _progress(reader, task_id, 5)
    assert [u["content"] for u in got] == [{"n": n} for n in range(5)]
    assert [u["update_id"] for u in got] == sorted(u["update_id"] for u in got)
    # The client sees its own session id, never the owner-scoped one the server keeps.
    assert {u["session_id"] for u in got} == {"chat"}
    assert set(got[0]) >= {"task_id", "trace_id", "update_type", "content", "created_at"}


async def test_reconnecting_with_last_event_id_loses_nothing() -> None:
    app = _app()
    headers = auth("alice-token-1")
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        async with client.stream("GET", "/sessions/chat/events", headers=headers) as response:
            reader = SseReader(response)
            await reader.until_comment("subscribed")
            task_id, driven = await spawn_driven(host_of(app), ALICE, "chat")
            for n in range(3):
                driven.emit({"n": n})
            first = await _progress(reader, task_id, 3)
        # Disconnected: everything emitted now must come back on reconnect.
        for n in range(3, 8):
            driven.emit({"n": n})
        session = await host_of(app).open(ALICE, "chat")

        async def all_stored() -> bool:
            updates = await session.list_updates(task_id=task_id)
            return sum(u.update_type is UpdateType.PROGRESS for u in updates) == 8

        await eventually(all_stored)
        last = first[-1]["update_id"]
        resume = {**headers, "Last-Event-ID": last}
        # A stale since_id in the URL is overridden by the header, as EventSource relies on.
        url = f"/sessions/chat/events?since_id={first[0]['update_id']}"
        async with client.stream("GET", url, headers=resume) as response:
            reader = SseReader(response)
            rest = await _progress(reader, task_id, 5)
            driven.finish()
    assert [u["content"]["n"] for u in rest] == [3, 4, 5, 6, 7]
    assert all(u["update_id"] > last for u in rest)


async def test_filters_by_task_and_update_type() -> None:
    app = _app()
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        host = host_of(app)
        _other_id, other = await spawn_driven(host, ALICE, "chat")
        task_id, driven = await spawn_driven(host, ALICE, "chat")
        url = f"/sessions/chat/events?task_id={task_id}&update_type=progress"
        async with client.stream("GET", url, headers=auth("alice-token-1")) as response:
            reader = SseReader(response)
            await reader.until_comment("subscribed")
            other.emit({"from": "other"})
            driven.emit({"kind": "checkpoint"}, UpdateType.CHECKPOINT)
            driven.emit({"from": "mine"})
            event = await reader.next_event()
    assert event.data["task_id"] == task_id
    assert event.data["content"] == {"from": "mine"}


async def test_idle_stream_gets_heartbeats() -> None:
    app = _app(heartbeat_s=0.05)
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        url = "/sessions/chat/events"
        async with client.stream("GET", url, headers=auth("alice-token-1")) as response:
            reader = SseReader(response)
            await reader.until_comment("subscribed")
            await reader.until_comment("ping")


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("update_type=BOGUS", 422, "invalid_request"),
    ],
)
async def test_bad_filters_are_json_errors(query: str, status: int, code: str) -> None:
    app = _app()
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.get(f"/sessions/chat/events?{query}", headers=auth("alice-token-1"))
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert "PROGRESS" in error["message"]  # the valid choices are listed


async def test_history_endpoint_pages_with_since_id() -> None:
    app = _app()
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        task_id, driven = await spawn_driven(host_of(app), ALICE, "chat")
        async with client.stream(
            "GET", f"/sessions/chat/events?task_id={task_id}", headers=auth("alice-token-1")
        ) as response:
            reader = SseReader(response)
            await reader.until_comment("subscribed")
            for n in range(3):
                driven.emit({"n": n})
            got = await _progress(reader, task_id, 3)
        response = await client.get(
            f"/sessions/chat/updates?task_id={task_id}&since_id={got[0]['update_id']}",
            headers=auth("alice-token-1"),
        )
    assert response.status_code == 200
    contents = [u["content"] for u in response.json()["updates"] if u["update_type"] == "PROGRESS"]
    assert contents == [{"n": 1}, {"n": 2}]
