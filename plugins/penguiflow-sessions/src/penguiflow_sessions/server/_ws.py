"""The WebSocket endpoint: updates out, steering and messages in, on one connection."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from ._errors import ServerError, error_body, from_exception
from ._wire import ClientFrame, MessageFrame, PingFrame, SteerFrame, update_view

if TYPE_CHECKING:
    from ..models import StateUpdate
    from ._app import _Api

__all__ = ["serve_websocket"]

logger = logging.getLogger("penguiflow_sessions.server")

_FRAMES: TypeAdapter[SteerFrame | MessageFrame | PingFrame] = TypeAdapter(ClientFrame)

#: Close codes (RFC 6455): going away, policy violation, message too big.
_GOING_AWAY, _POLICY, _TOO_BIG = 1001, 1008, 1009


async def _refuse(websocket: WebSocket, error: ServerError) -> None:
    # Before accepting, answer the handshake with the JSON error where the server supports
    # it (the ASGI denial-response extension); otherwise close it with a policy violation.
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        await websocket.send_denial_response(
            JSONResponse(error_body(error), status_code=error.status, headers=headers)
        )
    else:
        await websocket.close(code=_POLICY, reason=error.message[:120])


async def serve_websocket(api: _Api, websocket: WebSocket) -> None:
    """Serve one WebSocket connection to a session (see docs/sessions-server.md)."""
    try:
        principal = await api.principal(websocket)
        session_id = api.session_id(websocket)
        from ._app import _filters

        task_ids, update_types = _filters(websocket)
        since_id = websocket.query_params.get("since_id") or None
        session = await api.host.open(principal, session_id)
        subscription = await session.subscribe(
            task_ids=task_ids, update_types=update_types, since_id=since_id
        )
    except Exception as exc:
        await _refuse(websocket, from_exception(exc))
        return
    await websocket.accept()
    lock = asyncio.Lock()

    async def send(frame: dict[str, Any]) -> None:
        # The pump and the request loop both write; frames must not interleave.
        async with lock:
            await websocket.send_text(json.dumps(frame, ensure_ascii=False))

    async def pump() -> None:
        update: StateUpdate
        async for update in subscription:
            await send({"type": "update", "update": update_view(update, session_id)})
        await send({"type": "end", "reason": "session closed"})
        await websocket.close(code=_GOING_AWAY, reason="session closed")

    # The subscription exists before `ready` goes out: everything emitted after the client
    # reads `ready` reaches it.
    await send({"type": "ready", "session_id": session_id})
    pump_task = asyncio.create_task(pump(), name=f"ws-pump:{session_id}")
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            if len(text.encode("utf-8")) > api.limits.max_ws_message_bytes:
                await send(
                    {
                        "type": "error",
                        "request_id": None,
                        "error": error_body(
                            ServerError(
                                413,
                                "payload_too_large",
                                f"a frame may carry at most {api.limits.max_ws_message_bytes} "
                                "bytes (ServerLimits.max_ws_message_bytes)",
                            )
                        )["error"],
                    }
                )
                await websocket.close(code=_TOO_BIG, reason="frame too large")
                break
            await send(await _handle(api, principal, session_id, text))
    except WebSocketDisconnect:
        pass
    finally:
        pump_task.cancel()
        await asyncio.gather(pump_task, return_exceptions=True)
        close = getattr(subscription, "aclose", None)
        if close is not None:
            await close()


async def _handle(api: _Api, principal: Any, session_id: str, text: str) -> dict[str, Any]:
    request_id = _request_id(text)
    try:
        frame = _FRAMES.validate_json(text)
        request_id = frame.request_id
        if isinstance(frame, PingFrame):
            return {"type": "pong", "request_id": request_id}
        if isinstance(frame, MessageFrame):
            message = frame.model_dump(exclude={"type", "request_id"})
            from ._wire import MessageRequest

            task_id = await api.host.start_turn(
                principal, session_id, MessageRequest.model_validate(message)
            )
            return {"type": "ack", "request_id": request_id, "task_id": task_id}
        event_id, accepted = await api.host.steer(principal, session_id, frame)
        return {
            "type": "ack",
            "request_id": request_id,
            "event_id": event_id,
            "accepted": accepted,
        }
    except Exception as exc:
        error = from_exception(exc)
        return {"type": "error", "request_id": request_id, "error": error_body(error)["error"]}


def _request_id(text: str) -> str | None:
    # Echo the request id even on a frame that fails validation, when one can be read.
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get("request_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
