"""The `httpx2.Auth` objects behind `MCPOAuth` and `token_provider=` (see `auth`).

Imported only when an HTTP session opens: it imports the MCP SDK and httpx2.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator

import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata
from pydantic import AnyUrl

from penguiflow.errors import describe_exception

from .auth import MCPAuthorizationError, MCPOAuth, TokenProvider
from .config import MCPConfigError

__all__ = ["TokenProviderAuth", "oauth_auth"]

#: registered as the redirect URI when `MCPOAuth` has no handlers: that client can use stored
#: or refreshed tokens but never completes an authorization, so the address is never visited
_UNUSED_REDIRECT = "http://127.0.0.1/penguiflow-mcp-no-redirect"


class TokenProviderAuth(httpx2.Auth):
    """`Authorization: Bearer <token>` from a token provider: asked before each request, and
    once more with `force_refresh=True` when the server answers 401 (the request is then sent
    again with the fresh token)."""

    def __init__(self, provider: TokenProvider, server: str) -> None:
        self._provider = provider
        self._server = server

    async def _token(self, *, force_refresh: bool) -> str:
        value = self._provider(force_refresh=force_refresh)
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value:
            raise MCPConfigError(
                f"MCP server {self._server!r}: the token provider returned "
                f"{type(value).__name__}, not a non-empty string (the bearer token)"
            )
        return value

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        request.headers["Authorization"] = f"Bearer {await self._token(force_refresh=False)}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self._token(force_refresh=True)}"
            yield request


class _OAuthProvider(OAuthClientProvider):
    """The SDK's OAuth client with two changes, both so that a headless client keeps working
    with what it already has rather than asking a person to authorize again:

    - tokens loaded from storage get their expiry (the SDK only tracks the expiry of tokens it
      received in this process, so an expired stored token was sent, refused, and then a whole
      new authorization started); our storages hand back `expires_in` counted from now;
    - a 401 for an access token the server revoked is answered by a refresh first (the SDK
      goes straight to a new authorization); only if the refresh fails, or the refreshed
      token is refused too, does the SDK's full flow run.

    A pre-registered `client_id` is used instead of any registration kept in storage."""

    def __init__(
        self,
        *,
        server_url: str,
        client_metadata: OAuthClientMetadata,
        oauth: MCPOAuth,
        preregistered: OAuthClientInformationFull | None,
        server: str,
    ) -> None:
        super().__init__(
            server_url=server_url,
            client_metadata=client_metadata,
            storage=oauth.storage,
            redirect_handler=oauth.redirect_handler,
            callback_handler=oauth.callback_handler,
        )
        self._preregistered = preregistered
        self._server = server

    async def _initialize(self) -> None:
        await super()._initialize()
        tokens = self.context.current_tokens
        if tokens is not None and tokens.expires_in is not None:
            self.context.update_token_expiry(tokens)
        if self._preregistered is not None:
            self.context.client_info = self._preregistered

    async def _auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        inner = super()._auth_flow(request)
        refreshed = False
        try:
            outgoing = await inner.__anext__()
            while True:
                response = yield outgoing
                if (
                    outgoing is request
                    and response.status_code == 401
                    and not refreshed
                    and self.context.can_refresh_token()
                ):
                    refreshed = True
                    refresh_response = yield await self._refresh_token()
                    if await self._handle_refresh_response(refresh_response):
                        self._add_auth_header(request)
                        # The inner flow sees the answer to the retried request: a success
                        # ends it, another 401 starts its full authorization.
                        response = yield request
                outgoing = await inner.asend(response)
        except StopAsyncIteration:
            return
        except OAuthFlowError as exc:
            raise self._explain(exc) from exc
        finally:
            await inner.aclose()

    def _explain(self, exc: OAuthFlowError) -> MCPAuthorizationError:
        what = describe_exception(exc)
        if self.context.redirect_handler is None:
            return MCPAuthorizationError(
                f"MCP server {self._server!r} asks for a new OAuth authorization (no stored "
                "token it accepts, and none that can be refreshed), but its MCPOAuth has no "
                "redirect_handler/callback_handler to ask the user: pass both (and "
                "redirect_uri=), or give it a storage that holds valid tokens"
            )
        return MCPAuthorizationError(
            f"OAuth authorization with MCP server {self._server!r} failed: {what}; check "
            "MCPOAuth (redirect_uri, scopes, client_id) against what the authorization server "
            "accepts, or delete the stored tokens and client registration (its storage) to "
            "start over"
        )


def oauth_auth(oauth: MCPOAuth, server_url: str, server: str) -> httpx2.Auth:
    """The SDK's OAuth client for the MCP endpoint `server_url` of the server named `server`,
    configured from `oauth`."""
    redirect_uri = oauth.redirect_uri or _UNUSED_REDIRECT
    secret = oauth.client_secret
    metadata = OAuthClientMetadata(
        client_name=oauth.client_name,
        redirect_uris=[AnyUrl(redirect_uri)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        scope=" ".join(oauth.scopes) if oauth.scopes else None,
        # A public client (PKCE, no secret) unless a confidential one was registered for us.
        token_endpoint_auth_method="client_secret_post" if secret else "none",
    )
    preregistered = None
    if oauth.client_id is not None:
        preregistered = OAuthClientInformationFull(
            client_id=oauth.client_id,
            client_secret=secret,
            redirect_uris=[AnyUrl(redirect_uri)],
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="client_secret_post" if secret else "none",
            scope=metadata.scope,
        )
    return _OAuthProvider(
        server_url=server_url,
        client_metadata=metadata,
        oauth=oauth,
        preregistered=preregistered,
        server=server,
    )
