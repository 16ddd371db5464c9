"""OAuth 2.1 and token providers against real MCP servers on 127.0.0.1 (separate processes).

`servers/oauth_http.py` is the SDK's authorization server and resource server backed by our
own provider (`servers/oauth_provider.py`), which approves every authorization at once: the
redirect handler here follows the authorize URL with a real HTTP GET and hands the code in the
`Location` header to the callback handler, as a browser and a local callback server would.
"""

from __future__ import annotations

import functools
import json
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from conftest import HERE, free_port, wait_listening
from mcp.client.auth import AuthorizationCodeResult
from penguiflow_mcp import (
    FileTokenStorage,
    InMemoryTokenStorage,
    MCPAuthorizationError,
    MCPConfigError,
    MCPConnectionError,
    MCPConnector,
    MCPOAuth,
    MCPServerConfig,
    MCPTokenStorageError,
)

from penguiflow.testing import run_async

REDIRECT = "http://127.0.0.1:9/callback"  # never visited: the handler reads the redirect


def in_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body with `run_async` (a hang fails instead of stalling), as the
    rest of this package's tests do; pytest sees the fixtures of the wrapped function."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        run_async(lambda: test(*args, **kwargs), timeout=90)

    return run


class Server:
    def __init__(self, script: str, *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/mcp"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "servers" / script), str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_listening(self.proc, self.port, script, timeout_s=20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def get(self, path: str) -> Any:
        return httpx2.get(self.base + path).json()

    def post(self, path: str, body: str = "") -> Any:
        return httpx2.post(self.base + path, content=body.encode()).json()


@pytest.fixture
def oauth_server() -> Iterator[Server]:
    server = Server("oauth_http.py")
    yield server
    server.stop()


@pytest.fixture
def bearer_server() -> Iterator[Server]:
    server = Server("oauth_bearer_http.py", "first-token")
    yield server
    server.stop()


class Browser:
    """The user's side of the authorization-code step: the redirect handler GETs the
    authorize URL (the test server approves at once and redirects to `redirect_uri`), and the
    callback handler returns the code and state from that redirect (the SDK awaits the
    redirect handler before it calls the callback handler, so the result is there by then)."""

    def __init__(self) -> None:
        self.visits: list[str] = []
        self._results: list[AuthorizationCodeResult] = []

    async def redirect(self, url: str) -> None:
        self.visits.append(url)
        async with httpx2.AsyncClient() as client:
            answer = await client.get(url)
        assert answer.status_code in (302, 303, 307), answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT), location
        query = parse_qs(urlsplit(location).query)
        self._results.append(
            AuthorizationCodeResult(code=query["code"][0], state=query.get("state", [None])[0])
        )

    async def callback(self) -> AuthorizationCodeResult:
        return self._results.pop()

    def oauth(self, storage: Any) -> MCPOAuth:
        return MCPOAuth(
            storage=storage,
            redirect_handler=self.redirect,
            callback_handler=self.callback,
            redirect_uri=REDIRECT,
            client_name="penguiflow-tests",
        )


def _config(server: Server, name: str = "vault") -> MCPServerConfig:
    return MCPServerConfig(name=name, url=server.url, connect_timeout_s=30)


@in_loop
async def test_authorization_code_flow_then_stored_tokens(
    oauth_server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "tokens" / "vault.json"
    browser = Browser()
    async with MCPConnector(
        _config(oauth_server), oauth=browser.oauth(FileTokenStorage(path))
    ) as c:
        result = await c.call_tool("add", {"a": 2, "b": 3})
    assert result.structured == {"sum": 5}
    assert len(browser.visits) == 1
    visit = parse_qs(urlsplit(browser.visits[0]).query)
    assert visit["code_challenge_method"] == ["S256"]  # PKCE
    assert visit["redirect_uri"] == [REDIRECT]
    stats = oauth_server.get("/test/stats")
    assert stats["registrations"] == 1  # dynamic client registration
    assert stats["authorizations"] == 1
    assert stats["code_exchanges"] == 1

    # The file is private, complete, and left without temporary files.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["tokens"]["access_token"] and saved["tokens"]["refresh_token"]
    assert saved["client_info"]["client_id"]
    assert [p.name for p in path.parent.iterdir()] == ["vault.json"]

    # A second connector (a later run) with the same file: no new authorization.
    again = Browser()
    async with MCPConnector(_config(oauth_server), oauth=again.oauth(FileTokenStorage(path))) as c:
        result = await c.call_tool("add", {"a": 1, "b": 1})
    assert result.structured == {"sum": 2}
    assert again.visits == []
    stats = oauth_server.get("/test/stats")
    assert stats["authorizations"] == 1
    assert stats["registrations"] == 1
    assert stats.get("refreshes", 0) == 0


@in_loop
async def test_a_revoked_access_token_is_refreshed_not_reauthorized(oauth_server: Server) -> None:
    storage = InMemoryTokenStorage()
    browser = Browser()
    async with MCPConnector(_config(oauth_server), oauth=browser.oauth(storage)) as c:
        await c.call_tool("add", {"a": 1, "b": 2})
    oauth_server.post("/test/revoke-access")

    async with MCPConnector(_config(oauth_server), oauth=browser.oauth(storage)) as c:
        result = await c.call_tool("add", {"a": 4, "b": 4})
    assert result.structured == {"sum": 8}
    stats = oauth_server.get("/test/stats")
    assert stats["refreshes"] == 1
    assert stats["authorizations"] == 1  # the user was not asked again
    assert len(browser.visits) == 1


@in_loop
async def test_an_expired_stored_token_is_refreshed_before_use(
    oauth_server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "vault.json"
    browser = Browser()
    async with MCPConnector(
        _config(oauth_server), oauth=browser.oauth(FileTokenStorage(path))
    ) as c:
        await c.call_tool("add", {"a": 1, "b": 2})
    saved = json.loads(path.read_text())
    saved["tokens"]["expires_at"] = time.time() - 60  # expired a minute ago
    path.write_text(json.dumps(saved))
    accepted_before = oauth_server.get("/test/stats")["accepted_tokens"]

    oauth = MCPOAuth(storage=FileTokenStorage(path))  # headless: no handlers at all
    async with MCPConnector(_config(oauth_server), oauth=oauth) as c:
        result = await c.call_tool("add", {"a": 5, "b": 5})
    assert result.structured == {"sum": 10}
    stats = oauth_server.get("/test/stats")
    assert stats["refreshes"] == 1
    assert stats["authorizations"] == 1
    # Refreshed before sending: the expired token was never presented and refused.
    assert stats["accepted_tokens"] > accepted_before
    assert json.loads(path.read_text())["tokens"]["access_token"] != saved["tokens"]["access_token"]


@in_loop
async def test_a_refused_token_without_a_way_to_authorize_is_a_clear_error(
    oauth_server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "vault.json"
    storage = FileTokenStorage(path)
    browser = Browser()
    async with MCPConnector(_config(oauth_server), oauth=browser.oauth(storage)) as c:
        await c.call_tool("add", {"a": 1, "b": 2})
    saved = json.loads(path.read_text())
    saved["tokens"] = {"access_token": "wrong-token", "token_type": "Bearer"}  # no refresh
    path.write_text(json.dumps(saved))

    oauth = MCPOAuth(storage=FileTokenStorage(path))
    connector = MCPConnector(_config(oauth_server), oauth=oauth)
    with pytest.raises(MCPConnectionError) as caught:
        await connector.call_tool("add", {"a": 1, "b": 2})
    await connector.aclose()
    message = str(caught.value)
    assert "'vault'" in message and "asks for a new OAuth authorization" in message
    assert "redirect_handler/callback_handler" in message
    assert "even after OAuth authorization" not in message  # no misleading second reason
    assert isinstance(caught.value.__cause__, ExceptionGroup | MCPAuthorizationError)


@in_loop
async def test_token_provider_is_asked_again_after_a_401(bearer_server: Server) -> None:
    calls: list[bool] = []
    current = {"token": "first-token"}

    async def provider(*, force_refresh: bool) -> str:
        calls.append(force_refresh)
        if force_refresh:
            current["token"] = "second-token"
        return current["token"]

    config = MCPServerConfig(name="rotating", url=bearer_server.url)
    async with MCPConnector(config, token_provider=provider) as c:
        assert (await c.call_tool("add", {"a": 1, "b": 1})).structured == {"sum": 2}
        assert True not in calls
        bearer_server.post("/test/token", "second-token")  # the identity provider rotated it
        assert (await c.call_tool("add", {"a": 2, "b": 2})).structured == {"sum": 4}
    assert calls.count(True) == 1
    assert bearer_server.get("/test/refused")["refused"] == 1


@in_loop
async def test_a_token_provider_the_server_refuses_is_a_clear_error(bearer_server: Server) -> None:
    def provider(*, force_refresh: bool) -> str:  # a sync provider works too
        return "not-the-token"

    config = MCPServerConfig(name="rotating", url=bearer_server.url)
    connector = MCPConnector(config, token_provider=provider)
    with pytest.raises(MCPConnectionError) as caught:
        await connector.list_tools()
    await connector.aclose()
    message = str(caught.value)
    assert "'rotating'" in message and "HTTP 401" in message and "token_provider" in message


def test_auth_options_that_cannot_apply_are_refused() -> None:
    oauth = MCPOAuth()
    stdio = MCPServerConfig(name="local", command="mcp-server-time")
    with pytest.raises(MCPConfigError, match=r"stdio server.*HTTP"):
        MCPConnector(stdio, oauth=oauth)
    with pytest.raises(MCPConfigError, match="stdio server"):
        MCPConnector(stdio, token_provider=lambda force_refresh: "t")
    bearer = MCPServerConfig(name="remote", url="http://127.0.0.1:1/mcp", bearer_token="x")
    with pytest.raises(MCPConfigError, match="bearer_token and oauth="):
        MCPConnector(bearer, oauth=oauth)
    plain = MCPServerConfig(name="remote", url="http://127.0.0.1:1/mcp")
    with pytest.raises(MCPConfigError, match="not both"):
        MCPConnector(plain, oauth=oauth, token_provider=lambda force_refresh: "t")
    header = MCPServerConfig(
        name="remote", url="http://127.0.0.1:1/mcp", headers={"authorization": "Bearer x"}
    )
    with pytest.raises(MCPConfigError, match="Authorization header"):
        MCPConnector(header, oauth=oauth)


def test_mcp_oauth_checks_its_own_arguments() -> None:
    async def redirect(url: str) -> None: ...

    with pytest.raises(MCPConfigError, match="both redirect_handler"):
        MCPOAuth(redirect_handler=redirect)
    with pytest.raises(MCPConfigError, match="needs redirect_uri"):
        MCPOAuth(redirect_handler=redirect, callback_handler=Browser().callback)
    with pytest.raises(MCPConfigError, match="client_secret= needs the client_id"):
        MCPOAuth(client_secret="s")
    with pytest.raises(MCPConfigError, match="list of scopes"):
        MCPOAuth(scopes="notes")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not valid JSON"),
        ('{"tokens": {}}', "not a version-1"),
        ('{"version": 1, "tokens": {"token_type": "Bearer"}}', "'tokens' entry is invalid"),
    ],
)
@in_loop
async def test_a_corrupt_token_file_names_the_file_and_the_fix(
    tmp_path: Path, content: str, why: str
) -> None:
    path = tmp_path / "vault.json"
    path.write_text(content)
    with pytest.raises(MCPTokenStorageError) as caught:
        await FileTokenStorage(path).get_tokens()
    message = str(caught.value)
    assert str(path) in message and why in message and "Delete it" in message


@in_loop
async def test_storages_round_trip_tokens_and_expiry(tmp_path: Path) -> None:
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

    client = OAuthClientInformationFull(client_id="abc", redirect_uris=[REDIRECT])  # type: ignore[list-item]
    for storage in (InMemoryTokenStorage(), FileTokenStorage(tmp_path / "t.json")):
        assert await storage.get_tokens() is None
        assert await storage.get_client_info() is None
        await storage.set_tokens(OAuthToken(access_token="a", refresh_token="r", expires_in=600))
        await storage.set_client_info(client)
        tokens = await storage.get_tokens()
        assert tokens is not None and tokens.access_token == "a" and tokens.refresh_token == "r"
        assert tokens.expires_in is not None and 0 < tokens.expires_in <= 600
        info = await storage.get_client_info()
        assert info is not None and info.client_id == "abc"
