"""HTTPXTransport against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from penguiflow_llm_http import Credential, HTTPXTransport
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse

from penguiflow.llm import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMHTTPError,
    LLMTimeoutError,
)
from penguiflow.testing import run_async


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as running:
        yield running


def transport(url: str, key: str | None = "sk-test", **options: Any) -> HTTPXTransport:
    return HTTPXTransport(
        url, provider="Test", credential=Credential(key=key, source="test"), **options
    )


async def post(t: HTTPXTransport, body: dict[str, Any] | None = None) -> Any:
    async with t:
        return await t.post_json("/v1/x", body or {"q": 1})


def test_post_json_sends_the_body_the_credential_and_extra_headers(
    server: ScriptedHTTPServer,
) -> None:
    server.add(ScriptedResponse(body={"ok": True}))
    answer = run_async(lambda: post(transport(server.url + "/", headers={"x-extra": "1"})))
    assert answer == {"ok": True}
    sent = server.requests[0]
    assert (sent.method, sent.path, sent.json()) == ("POST", "/v1/x", {"q": 1})
    assert sent.headers["authorization"] == "Bearer sk-test" and sent.headers["x-extra"] == "1"


def test_a_custom_auth_header_and_no_header_without_a_key(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(body={}), ScriptedResponse(body={}))
    run_async(lambda: post(transport(server.url, auth_header="x-api-key", auth_prefix="")))
    run_async(lambda: post(transport(server.url, key=None)))
    assert server.requests[0].headers["x-api-key"] == "sk-test"
    assert "authorization" not in server.requests[1].headers


def test_a_401_asks_a_refreshable_credential_for_a_fresh_token_once(
    server: ScriptedHTTPServer,
) -> None:
    asked: list[bool] = []

    def tokens(*, force_refresh: bool) -> str:
        asked.append(force_refresh)
        return "fresh" if force_refresh else "stale"

    credential = Credential(provider=tokens, source="token provider")
    server.add(ScriptedResponse(status=401, body={"error": {"message": "expired"}}))
    server.add(ScriptedResponse(body={"ok": 1}))
    t = HTTPXTransport(server.url, provider="Test", credential=credential)
    assert run_async(lambda: post(t)) == {"ok": 1}
    assert asked == [False, True]
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer stale",
        "Bearer fresh",
    ]


def test_error_statuses_name_provider_url_and_fix_and_hide_the_secret(
    server: ScriptedHTTPServer,
) -> None:
    server.add(
        ScriptedResponse(
            status=429,
            headers={"retry-after": "2"},
            body={"error": {"message": "slow down, sk-test"}},
        )
    )
    with pytest.raises(LLMHTTPError) as caught:
        run_async(lambda: post(transport(server.url)))
    error = caught.value
    assert str(error) == f"Test at {server.url}/v1/x answered 429: slow down, *** (rate limited)"
    assert error.status == 429 and error.retry_after_s == 2.0 and error.retryable
    assert "sk-test" not in error.body


def test_a_body_that_is_not_json_is_a_502(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(body="<html>gateway</html>"))
    with pytest.raises(LLMHTTPError, match="with a body that is not JSON") as caught:
        run_async(lambda: post(transport(server.url)))
    assert caught.value.status == 502 and caught.value.body == "<html>gateway</html>"


def test_post_stream_yields_lines_and_refuses_error_statuses(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse.sse([{"t": "a"}, "[DONE]"], event_names=["delta", None]))
    server.add(ScriptedResponse(status=500, body={"error": {"message": "boom"}}))

    async def read(t: HTTPXTransport) -> list[str]:
        async with t, t.post_stream("/s", {"stream": True}) as lines:
            return [line async for line in lines]

    lines = run_async(lambda: read(transport(server.url)))
    assert lines == ["event: delta", 'data: {"t": "a"}', "", "data: [DONE]", ""]
    assert server.requests[0].headers["accept"] == "text/event-stream"
    with pytest.raises(LLMHTTPError, match="answered 500: boom"):
        run_async(lambda: read(transport(server.url)))


def test_timeouts_and_unreachable_servers(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(body={}, delay_s=1.0))
    with pytest.raises(LLMTimeoutError, match=r"did not answer within 0\.2s"):
        run_async(lambda: post(transport(server.url, timeout_s=0.2)))
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LLMConnectionError, match=r"could not be reached.*check base_url"):
        run_async(lambda: post(transport(f"http://127.0.0.1:{port}")))


def test_aclose_is_idempotent_and_leaves_a_given_client_open(server: ScriptedHTTPServer) -> None:
    async def scenario() -> bool:
        own = transport(server.url)
        await own.aclose()
        await own.aclose()
        given = httpx.AsyncClient()
        t = transport(server.url, client=given)
        await t.aclose()
        still_open = not given.is_closed
        await given.aclose()
        return still_open

    assert run_async(scenario)


def test_for_provider_resolves_the_credential_and_bad_urls_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PF_TEST_TRANSPORT_KEY", "from-env")
    t = HTTPXTransport.for_provider(
        "http://127.0.0.1:1",
        provider="Test",
        provider_name="Test",
        api_key=None,
        token_provider=None,
        env_var="PF_TEST_TRANSPORT_KEY",
        required=True,
    )
    assert "from-env" not in repr(t) and "environment variable PF_TEST_TRANSPORT_KEY" in repr(t)
    run_async(t.aclose)
    with pytest.raises(LLMConfigurationError, match="base_url must start with http://"):
        transport("127.0.0.1:8080")
