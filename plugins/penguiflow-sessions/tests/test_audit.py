"""Steering events and approvals/rejections go to the audit trail, as the session's tenant and
user, through the session's state store; payloads only with content capture on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from penguiflow_sessions.models import SessionLimits, TaskStatus, TaskType
from penguiflow_sessions.session import StreamingSession, TaskRuntime
from penguiflow_sessions.steering import SteeringEvent, SteeringEventType

from penguiflow import audit
from penguiflow.state import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore

E = SteeringEventType


@pytest.fixture(autouse=True)
def _trail(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PENGUIFLOW_CAPTURE_CONTENT", raising=False)
    restore = audit.set_audit_store(None)
    yield
    restore()


async def forever(rt: TaskRuntime) -> None:
    await asyncio.Event().wait()


async def _wait_status(session: StreamingSession, task_id: str, status: TaskStatus) -> None:
    async with asyncio.timeout(5):
        while (task := await session.get_task(task_id)) is None or task.status is not status:
            await asyncio.sleep(0)


def _event(session: StreamingSession, task_id: str, kind: SteeringEventType, **kw: Any) -> Any:
    return SteeringEvent(session_id=session.session_id, task_id=task_id, event_type=kind, **kw)


def _as(session: StreamingSession, tenant: str, user: str) -> None:
    # What the session server does for each principal's session.
    session.update_context(tool_context={"tenant_id": tenant, "user_id": user})


async def test_steering_parking_and_approval_are_recorded(tmp_path: Path) -> None:
    async with SQLiteStateStore(f"sqlite:///{tmp_path / 's.db'}") as store:
        async with StreamingSession("chat-1", state_store=store) as session:
            _as(session, "acme", "ann")
            task_id = await session.spawn_task(forever)
            await _wait_status(session, task_id, TaskStatus.RUNNING)
            private = {"text": "my card is 4242", "api_key": "sk-live-xyz12345"}
            inject = _event(session, task_id, E.INJECT_CONTEXT, payload=private)
            assert await session.steer(inject) is True
            cancel = _event(session, task_id, E.CANCEL, source="agent")
            assert await session.steer(cancel) is False  # parked until a user approves
            approve = _event(session, task_id, E.APPROVE, payload={"resume_token": cancel.event_id})
            assert await session.steer(approve) is True
            await _wait_status(session, task_id, TaskStatus.CANCELLED)

        records = await store.list_audit("acme", session_id="chat-1")
        assert [(r.action, r.outcome, r.details["sender"]) for r in records] == [
            ("steering.inject_context", "applied", "user"),
            ("steering.cancel", "parked", "agent"),
            ("approval.approve", "applied", "user"),
        ]
        assert {(r.source, r.user, r.target) for r in records} == {("session", "ann", task_id)}
        assert records[2].details["decides"] == "control"
        assert [r.details["event_id"] for r in records] == [
            inject.event_id, cancel.event_id, approve.event_id]  # fmt: skip
        text = json.dumps([r.to_dict() for r in records])
        assert "4242" not in text and "sk-live" not in text  # content capture is off
        assert await store.list_audit("globex") == []


async def test_a_rejection_and_a_cascade_are_recorded() -> None:
    store = InMemoryStateStore()
    limits = SessionLimits(max_concurrent_tasks=0)
    async with StreamingSession("chat-2", state_store=store, limits=limits) as session:
        _as(session, "acme", "bob")
        parent = await session.spawn_task(forever)
        child = await session.spawn_task(
            forever, task_type=TaskType.BACKGROUND, parent_task_id=parent
        )
        await _wait_status(session, child, TaskStatus.RUNNING)
        cancel = _event(session, parent, E.CANCEL, source="agent")
        assert await session.steer(cancel) is False
        reject = _event(session, parent, E.REJECT, payload={"resume_token": cancel.event_id})
        assert await session.steer(reject) is False
        assert await session.cancel_task(parent, reason="user stop") is True
        await _wait_status(session, child, TaskStatus.CANCELLED)

    records = await store.list_audit("acme", session_id="chat-2")
    assert [(r.action, r.outcome, r.target) for r in records] == [
        ("steering.cancel", "parked", parent),
        ("approval.reject", "rejected", parent),
        ("steering.cancel", "applied", child),  # the cascade, recorded first (inner call)
        ("steering.cancel", "applied", parent),
    ]
    assert records[2].details["sender"] == "system"
    assert records[2].details["propagated_from"] == parent


async def test_payloads_are_kept_redacted_with_content_capture_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PENGUIFLOW_CAPTURE_CONTENT", "1")
    store = InMemoryStateStore()
    async with StreamingSession("chat-3", state_store=store) as session:
        _as(session, "acme", "ann")
        task_id = await session.spawn_task(forever)
        await _wait_status(session, task_id, TaskStatus.RUNNING)
        payload = {"instruction": "use the EU region", "password": "hunter2"}
        steer = _event(session, task_id, E.REDIRECT, payload=payload)
        await session.steer(steer)
    (entry,) = await store.list_audit("acme")
    assert entry.details["content"]["payload"]["instruction"] == "use the EU region"
    assert entry.details["content"]["payload"]["password"] == "***"


async def test_a_session_store_without_the_capability_uses_the_process_store() -> None:
    trail = InMemoryStateStore()
    restore = audit.set_audit_store(trail)
    try:
        async with StreamingSession("chat-4") as session:  # in-memory session store
            _as(session, "acme", "ann")
            task_id = await session.spawn_task(forever)
            await _wait_status(session, task_id, TaskStatus.RUNNING)
            await session.cancel_task(task_id)
    finally:
        restore()
    assert [r.action for r in await trail.list_audit("acme")] == ["steering.cancel"]
