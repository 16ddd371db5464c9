"""Authentication, tenant isolation, request limits and the JSON error shape, over HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import penguiflow_sessions.server as server_module
import pytest
import websockets
from _server_support import (
    ALICE,
    BOB,
    EVE,
    TOKENS,
    SseReader,
    auth,
    host_of,
    serving,
    spawn_driven,
)
from penguiflow_sessions.server import (
    AnonymousAuthenticator,
    BearerTokenAuthenticator,
    PermissionDeniedError,
    Principal,
    ServerLimits,
    create_app,
    parse_token_spec,
)
from starlette.requests import HTTPConnection

from penguiflow.errors import ConfigurationError, PenguiFlowError


def _app(**limits: Any) -> Any:
    return create_app(authenticator=BearerTokenAuthenticator(TOKENS), limits=ServerLimits(**limits))


def test_public_names() -> None:
    for name in server_module.__all__:
        assert getattr(server_module, name) is not None
    assert "create_app" in server_module.__all__
    assert issubclass(server_module.ServerError, PenguiFlowError)
    assert issubclass(server_module.AuthenticationError, PenguiFlowError)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0"}, {"Authorization": "Basic YWxpY2U6cHc="}],
)
async def test_requests_without_a_valid_token_get_401(headers: dict[str, str]) -> None:
    async with serving(_app()) as base, httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/sessions/chat/tasks", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthenticated"
    assert "Bearer" in response.json()["error"]["message"]


async def test_a_session_is_reachable_only_by_its_owner() -> None:
    app = _app()
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        task_id, driven = await spawn_driven(host_of(app), ALICE, "chat")
        mine = await client.get("/sessions/chat/tasks", headers=auth("alice-token-1"))
        assert [t["task_id"] for t in mine.json()["tasks"]] == [task_id]
        for token in ("bob-token-12", "eve-token-123"):  # another user; another tenant
            listed = await client.get("/sessions/chat/tasks", headers=auth(token))
            assert listed.json()["tasks"] == []
            one = await client.get(f"/sessions/chat/tasks/{task_id}", headers=auth(token))
            assert one.status_code == 404
            steer = await client.post(
                "/sessions/chat/steer",
                headers=auth(token),
                json={"task_id": task_id, "event_type": "CANCEL"},
            )
            assert steer.status_code == 404
            # The answer is the same as for a task that never existed: nothing leaks.
            never = await client.get("/sessions/chat/tasks/never-was", headers=auth(token))
            assert one.json()["error"]["code"] == never.json()["error"]["code"] == "not_found"
        # Bob's stream on the same session id hears nothing of Alice's session: the first
        # event he gets is from his own, emitted after Alice's.
        async with client.stream(
            "GET", "/sessions/chat/events", headers=auth("bob-token-12")
        ) as response:
            reader = SseReader(response)
            await reader.until_comment("subscribed")
            driven.emit({"secret": "alice's"})
            bob_task, bob_driven = await spawn_driven(host_of(app), BOB, "chat")
            bob_driven.emit({"hello": "bob"})
            event = await reader.next_event()
            while event.data["update_type"] != "PROGRESS":
                assert event.data["task_id"] == bob_task
                event = await reader.next_event()
        assert event.data["content"] == {"hello": "bob"}
        task = await (await host_of(app).open(ALICE, "chat")).get_task(task_id)
        assert task is not None and not task.status.is_terminal  # Bob's CANCEL never landed
        driven.finish()
        bob_driven.finish()


async def test_websocket_handshake_needs_a_token() -> None:
    async with serving(_app()) as base:
        url = base.replace("http://", "ws://") + "/sessions/chat/ws"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url):
                pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["code"] == "unauthenticated"


async def test_query_token_only_when_allowed() -> None:
    strict = create_app(authenticator=BearerTokenAuthenticator(TOKENS))
    lenient = create_app(authenticator=BearerTokenAuthenticator(TOKENS, allow_query_token=True))
    for app, status in ((strict, 401), (lenient, 200)):
        async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
            response = await client.get("/sessions/chat/tasks?access_token=alice-token-1")
            assert response.status_code == status
            # Never on a request that changes state.
            post = await client.post("/sessions?access_token=alice-token-1", json={})
            assert post.status_code == 401


async def test_custom_authenticator_can_forbid() -> None:
    class OnlyAcme:
        async def authenticate(self, connection: HTTPConnection) -> Principal | None:
            tenant = connection.headers.get("x-tenant")
            if tenant is None:
                return None
            if tenant != "acme":
                raise PermissionDeniedError(f"tenant {tenant!r} is not served here")
            return Principal("acme", connection.headers.get("x-user", "someone"))

    app = create_app(authenticator=OnlyAcme())
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        ok = await client.post("/sessions", headers={"x-tenant": "acme"}, json={})
        denied = await client.post("/sessions", headers={"x-tenant": "umbrella"}, json={})
    assert ok.status_code == 201 and ok.json()["session_id"]
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "forbidden",
        "message": "tenant 'umbrella' is not served here",
        "status": 403,
    }


async def test_request_limits_and_malformed_bodies() -> None:
    app = _app(max_body_bytes=256)
    headers = auth("alice-token-1")
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        big = await client.post(
            "/sessions/chat/steer", headers=headers, json={"task_id": "t", "x": "y" * 400}
        )
        assert big.status_code == 413 and "256" in big.json()["error"]["message"]
        bad_json = await client.post("/sessions/chat/steer", headers=headers, content=b"{not json")
        assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
        unknown_field = await client.post(
            "/sessions/chat/steer",
            headers=headers,
            json={"task_id": "t", "event_type": "PAUSE", "paylod": {}},
        )
        assert unknown_field.status_code == 422
        assert "paylod" in unknown_field.json()["error"]["message"]
        bad_id = await client.get("/sessions/a%20b/tasks", headers=headers)
        assert bad_id.status_code == 422
        nowhere = await client.get("/nowhere", headers=headers)
        assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
        no_planner = await client.post(
            "/sessions/chat/messages", headers=headers, json={"query": "hi"}
        )
        assert no_planner.status_code == 501
        assert "ReactPlanner" in no_planner.json()["error"]["message"]


async def test_sessions_per_principal_are_capped() -> None:
    app = _app(max_sessions_per_principal=2)
    headers = auth("alice-token-1")
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        for name in ("a", "b"):
            assert (
                await client.post("/sessions", headers=headers, json={"session_id": name})
            ).status_code == 201
        third = await client.post("/sessions", headers=headers, json={"session_id": "c"})
        assert third.status_code == 429 and "DELETE" in third.json()["error"]["message"]
        # Bob has his own allowance.
        assert (
            await client.post("/sessions", headers=auth("bob-token-12"), json={})
        ).status_code == 201
        assert (await client.delete("/sessions/a", headers=headers)).status_code == 204
        assert (await client.delete("/sessions/a", headers=headers)).status_code == 404
        assert (
            await client.post("/sessions", headers=headers, json={"session_id": "c"})
        ).status_code == 201


def test_token_spec_parsing() -> None:
    tokens = parse_token_spec("tok-aaaaaaaa acme/alice  # ops\n\ntok-bbbbbbbb acme/bob;")
    assert tokens == {"tok-aaaaaaaa": ALICE, "tok-bbbbbbbb": BOB}
    with pytest.raises(ConfigurationError, match="TOKEN TENANT/USER"):
        parse_token_spec("tok-aaaaaaaa alice")
    with pytest.raises(ConfigurationError, match="repeats"):
        parse_token_spec("tok-aaaaaaaa a/b\ntok-aaaaaaaa c/d")
    with pytest.raises(ConfigurationError) as error:
        parse_token_spec("hidden-value-zz")
    assert "hidden-value" not in str(error.value)  # a malformed entry never echoes the token


def test_authenticator_and_principal_validation() -> None:
    with pytest.raises(ConfigurationError, match="at least one token"):
        BearerTokenAuthenticator({})
    with pytest.raises(ConfigurationError, match="8 characters"):
        BearerTokenAuthenticator({"short": ALICE})
    with pytest.raises(ConfigurationError, match="tenant"):
        Principal("", "alice")
    with pytest.raises(ConfigurationError, match="authenticate"):
        create_app(authenticator=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_body_bytes"):
        ServerLimits(max_body_bytes=0)
    assert EVE != ALICE  # same user name, another tenant: another principal
    assert AnonymousAuthenticator().principal == Principal("default", "anonymous")
