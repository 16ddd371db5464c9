"""The WebSocket endpoint over real loopback: updates out, steering in, errors as frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from _server_support import ALICE, TOKENS, host_of, serving, spawn_driven
from penguiflow_sessions.server import BearerTokenAuthenticator, ServerLimits, create_app
from penguiflow_sessions.steering import SteeringEventType


def _app(**limits: Any) -> Any:
    return create_app(authenticator=BearerTokenAuthenticator(TOKENS), limits=ServerLimits(**limits))


def _ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


def _connect(base: str, path: str, token: str = "alice-token-1") -> Any:
    return websockets.connect(
        _ws_url(base, path), additional_headers={"Authorization": f"Bearer {token}"}
    )


async def _frame(ws: Any, kind: str) -> dict[str, Any]:
    """The next frame of type `kind`, skipping others (updates interleave with acks)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame["type"] == kind:
            return frame


async def _progress(ws: Any, task_id: str) -> dict[str, Any]:
    while True:
        frame = await _frame(ws, "update")
        update = frame["update"]
        if update["task_id"] == task_id and update["update_type"] == "PROGRESS":
            return update


async def test_updates_out_and_steering_in() -> None:
    app = _app()
    async with serving(app) as base, _connect(base, "/sessions/chat/ws") as ws:
        ready = await _frame(ws, "ready")
        assert ready == {"type": "ready", "session_id": "chat"}
        task_id, driven = await spawn_driven(host_of(app), ALICE, "chat")
        driven.emit({"step": 1})
        update = await _progress(ws, task_id)
        assert update["content"] == {"step": 1} and update["session_id"] == "chat"

        await ws.send(
            json.dumps(
                {
                    "type": "steer",
                    "request_id": "r1",
                    "task_id": task_id,
                    "event_type": "inject_context",
                    "payload": {"text": "focus on Europe"},
                    "event_id": "ev-1",
                }
            )
        )
        ack = await _frame(ws, "ack")
        assert ack == {"type": "ack", "request_id": "r1", "event_id": "ev-1", "accepted": True}
        while not driven.steering:
            driven.emit({"poke": True})  # lets the pipeline's loop run; it records steering
            await _progress(ws, task_id)
        event = driven.steering[0]
        assert event.event_type is SteeringEventType.INJECT_CONTEXT
        assert event.payload["text"] == "focus on Europe"
        assert event.source == "user"
        driven.finish()


async def test_cancel_over_websocket_ends_the_task() -> None:
    app = _app()
    async with serving(app) as base, _connect(base, "/sessions/chat/ws") as ws:
        await _frame(ws, "ready")
        task_id, _driven = await spawn_driven(host_of(app), ALICE, "chat")
        await ws.send(
            json.dumps(
                {"type": "steer", "request_id": "c", "task_id": task_id, "event_type": "CANCEL"}
            )
        )
        ack, cancelled = None, False
        # The ack and the task's updates travel concurrently: either may come first.
        while ack is None or not cancelled:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "ack":
                ack = frame
            elif frame["type"] == "update" and frame["update"]["task_id"] == task_id:
                update = frame["update"]
                cancelled = cancelled or (
                    update["update_type"] == "STATUS_CHANGE"
                    and update["content"]["status"] == "CANCELLED"
                )
        assert ack["accepted"] is True
        session = await host_of(app).open(ALICE, "chat")
        task = await session.get_task(task_id)
        assert task is not None and task.status.value == "CANCELLED"


@pytest.mark.parametrize(
    ("frame", "status", "code"),
    [
        (
            {"type": "steer", "request_id": "x", "task_id": "nope", "event_type": "PAUSE"},
            404,
            "not_found",
        ),
        ({"type": "dance", "request_id": "x"}, 422, "invalid_request"),
        (
            {
                "type": "steer",
                "request_id": "x",
                "task_id": "t",
                "event_type": "PAUSE",
                "paylod": {},
            },
            422,
            "invalid_request",
        ),
        ({"type": "message", "request_id": "x", "query": "hi"}, 501, "no_planner"),
    ],
)
async def test_bad_frames_get_error_frames(frame: dict[str, Any], status: int, code: str) -> None:
    app = _app()
    async with serving(app) as base, _connect(base, "/sessions/chat/ws") as ws:
        await _frame(ws, "ready")
        await ws.send(json.dumps(frame))
        error = await _frame(ws, "error")
        assert error["request_id"] == "x"
        assert error["error"]["status"] == status and error["error"]["code"] == code
        # The connection survives a bad frame.
        await ws.send(json.dumps({"type": "ping", "request_id": "p"}))
        assert await _frame(ws, "pong") == {"type": "pong", "request_id": "p"}


async def test_invalid_steering_payload_is_refused_with_the_rule() -> None:
    app = _app()
    async with serving(app) as base, _connect(base, "/sessions/chat/ws") as ws:
        await _frame(ws, "ready")
        task_id, driven = await spawn_driven(host_of(app), ALICE, "chat")
        # INJECT_CONTEXT needs a `text`.
        await ws.send(
            json.dumps(
                {
                    "type": "steer",
                    "request_id": "v",
                    "task_id": task_id,
                    "event_type": "INJECT_CONTEXT",
                    "payload": {},
                }
            )
        )
        error = await _frame(ws, "error")
        assert error["error"]["status"] == 422
        assert "text" in error["error"]["message"]
        driven.finish()


async def test_oversize_frame_is_refused_and_closes() -> None:
    app = _app(max_ws_message_bytes=1024)
    async with serving(app) as base, _connect(base, "/sessions/chat/ws") as ws:
        await _frame(ws, "ready")
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 2000}))
        error = await _frame(ws, "error")
        assert error["error"]["code"] == "payload_too_large"
        assert "1024" in error["error"]["message"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_resume_with_since_id_replays_missed_updates() -> None:
    app = _app()
    async with serving(app) as base:
        async with _connect(base, "/sessions/chat/ws") as ws:
            await _frame(ws, "ready")
            task_id, driven = await spawn_driven(host_of(app), ALICE, "chat")
            driven.emit({"n": 0})
            last = (await _progress(ws, task_id))["update_id"]
        for n in (1, 2, 3):
            driven.emit({"n": n})
        path = f"/sessions/chat/ws?since_id={last}&task_id={task_id}"
        async with _connect(base, path) as ws:
            got = [(await _progress(ws, task_id))["content"]["n"] for _ in range(3)]
        driven.finish()
    assert got == [1, 2, 3]
