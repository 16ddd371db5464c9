"""Bad input, authentication, tenant isolation, size limits and persistence of our server.

Each bad request must be answered in the binding's error shape, leave no server-side
exception (the app logs those at ERROR: none may appear) and change no state.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from penguiflow_a2a.server import (
    APIKeyAuthenticator,
    BearerTokenAuthenticator,
    ServerLimits,
    create_a2a_app,
)
from server_support import CARD, serve, shout_flow

from penguiflow.state.sqlite import SQLiteStateStore

TOKENS = {"alpha-token": "alpha", "beta-token": "beta"}
V = {"A2A-Version": "1.0"}
ALPHA = {**V, "Authorization": "Bearer alpha-token"}
BETA = {**V, "Authorization": "Bearer beta-token"}


def _send_body(text: str = "hi", **message: Any) -> dict[str, Any]:
    return {
        "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": text}], **message}
    }


def _rpc(method: str, params: dict[str, Any], rpc_id: int = 7) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params}


def _build(url: str, **kw: Any) -> Any:
    kw.setdefault("authenticator", BearerTokenAuthenticator(TOKENS))
    return create_a2a_app(shout_flow(), agent_card=CARD, base_url=url, **kw)


@pytest.fixture
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.ERROR)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def _task_count(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> int:
    r = await http.get(f"{url}/tasks", headers=headers)
    assert r.status_code == 200
    return int(r.json()["totalSize"])


def _rest_reason(r: httpx.Response) -> str:
    error = r.json()["error"]
    assert error["code"] == r.status_code
    return str(error["details"][0]["reason"])


async def test_rest_bad_input_answers_in_problem_shape(no_server_errors: Any) -> None:
    async with serve(_build) as url, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{url}/message:send", content=b"{not json", headers=ALPHA)
        assert r.status_code == 400 and _rest_reason(r) == "INVALID_REQUEST"
        r = await http.post(f"{url}/message:send", json={"message": {"parts": "x"}}, headers=ALPHA)
        assert r.status_code == 400 and _rest_reason(r) == "INVALID_PARAMS"
        r = await http.get(f"{url}/tasks/nope", headers=ALPHA)
        assert r.status_code == 404 and _rest_reason(r) == "TASK_NOT_FOUND"
        r = await http.post(f"{url}/tasks/nope:cancel", headers=ALPHA)
        assert r.status_code == 404 and _rest_reason(r) == "TASK_NOT_FOUND"
        r = await http.post(
            f"{url}/message:send", json=_send_body(), headers={**ALPHA, "A2A-Version": "0.3"}
        )
        assert r.status_code == 400 and _rest_reason(r) == "VERSION_NOT_SUPPORTED"
        r = await http.post(f"{url}/message:send", json=_send_body(), headers=V)
        assert r.status_code == 401 and _rest_reason(r) == "UNAUTHENTICATED"
        r = await http.post(
            f"{url}/message:send", json=_send_body(), headers={**V, "Authorization": "Bearer x"}
        )
        assert r.status_code == 401
        r = await http.post(
            f"{url}/message:send",
            json=_send_body(_send_body("x")["message"]["parts"][0]["text"]),
            headers={**ALPHA, "A2A-Version": "2.0"},
        )
        assert r.status_code == 400
        assert await _task_count(http, url, ALPHA) == 0


async def test_jsonrpc_bad_input_answers_with_spec_codes(no_server_errors: Any) -> None:
    async with serve(_build) as url, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(url + "/", content=b"{oops", headers=ALPHA)
        assert r.json()["error"]["code"] == -32700 and r.json()["id"] is None
        r = await http.post(url + "/", json=_rpc("tasks/send", {}), headers=ALPHA)
        assert r.json()["error"]["code"] == -32601 and r.json()["id"] == 7
        r = await http.post(url + "/", json={"id": 1, "method": "GetTask"}, headers=ALPHA)
        assert r.json()["error"]["code"] == -32600
        r = await http.post(url + "/", json=_rpc("GetTask", {"id": "nope"}), headers=ALPHA)
        assert r.json()["error"]["code"] == -32001
        r = await http.post(url + "/", json=_rpc("SendMessage", {"message": 3}), headers=ALPHA)
        assert r.json()["error"]["code"] == -32602
        r = await http.post(
            url + "/", json=_rpc("SendMessage", _send_body()), headers={**ALPHA, "A2A-Version": "9"}
        )
        assert r.json()["error"]["code"] == -32009
        r = await http.post(url + "/", json=_rpc("SendMessage", _send_body()), headers=V)
        assert r.status_code == 401 and r.json()["error"]["code"] == -32600
        assert await _task_count(http, url, ALPHA) == 0


async def test_oversize_bodies_are_refused_on_both_bindings(no_server_errors: Any) -> None:
    def build(url: str) -> Any:
        return _build(url, limits=ServerLimits(max_body_bytes=2_000))

    async with serve(build) as url, httpx.AsyncClient(timeout=30) as http:
        big = _send_body("x" * 5_000)
        r = await http.post(f"{url}/message:send", json=big, headers=ALPHA)
        assert r.status_code == 413 and _rest_reason(r) == "PAYLOAD_TOO_LARGE"
        r = await http.post(url + "/", json=_rpc("SendMessage", big), headers=ALPHA)
        assert r.json()["error"]["code"] == -32600

        async def chunked() -> Any:  # no Content-Length: the limit applies while reading
            for _ in range(10):
                yield b"x" * 500

        r = await http.post(f"{url}/message:send", content=chunked(), headers=ALPHA)
        assert r.status_code == 413
        assert await _task_count(http, url, ALPHA) == 0


async def test_tenants_cannot_see_each_others_tasks(no_server_errors: Any) -> None:
    async with serve(_build) as url, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{url}/message:send", json=_send_body("mine"), headers=ALPHA)
        task_id = r.json()["task"]["id"]
        assert r.json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        for call in (
            http.get(f"{url}/tasks/{task_id}", headers=BETA),
            http.post(f"{url}/tasks/{task_id}:cancel", headers=BETA),
            http.get(f"{url}/tasks/{task_id}:subscribe", headers=BETA),
            http.get(f"{url}/tasks/{task_id}/pushNotificationConfigs", headers=BETA),
        ):
            r = await call
            assert r.status_code == 404, r.text
        r = await http.post(url + "/", json=_rpc("GetTask", {"id": task_id}), headers=BETA)
        assert r.json()["error"]["code"] == -32001
        r = await http.post(
            f"{url}/message:send", json=_send_body("x", taskId=task_id), headers=BETA
        )
        assert r.status_code == 404
        assert await _task_count(http, url, BETA) == 0
        assert await _task_count(http, url, ALPHA) == 1
        r = await http.get(f"{url}/tasks/{task_id}", headers=ALPHA)
        assert r.status_code == 200


async def test_api_key_authenticator() -> None:
    def build(url: str) -> Any:
        return _build(url, authenticator=APIKeyAuthenticator({"k1": "alpha"}))

    async with serve(build) as url, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{url}/message:send", json=_send_body(), headers={"X-API-Key": "k1"})
        assert r.status_code == 200
        r = await http.post(f"{url}/message:send", json=_send_body(), headers={"X-API-Key": "k2"})
        assert r.status_code == 401
        r = await http.get(f"{url}/.well-known/agent-card.json")
        assert r.status_code == 200 and r.json()["name"] == CARD.name


async def test_a_restarted_server_answers_get_for_earlier_tasks(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path / 'tasks.db'}"
    store = SQLiteStateStore(db)
    async with serve(lambda url: _build(url, state_store=store)) as url, httpx.AsyncClient() as h:
        r = await h.post(f"{url}/message:send", json=_send_body("keep me"), headers=ALPHA)
        task_id = r.json()["task"]["id"]
    await store.aclose()
    store = SQLiteStateStore(db)
    async with serve(lambda url: _build(url, state_store=store)) as url, httpx.AsyncClient() as h:
        r = await h.get(f"{url}/tasks/{task_id}", headers=ALPHA)
        assert r.status_code == 200
        task = r.json()
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        assert task["artifacts"][0]["parts"][0]["text"] == "KEEP ME"
        r = await h.get(f"{url}/tasks/{task_id}", headers=BETA)
        assert r.status_code == 404
    await store.aclose()
