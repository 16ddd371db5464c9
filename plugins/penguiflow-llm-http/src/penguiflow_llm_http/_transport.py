"""`HTTPXTransport`: JSON and server-sent-event requests over httpx, for LLM adapters.

httpx is imported when a transport is created, not when this package is: an adapter's driver
module imports the toolkit, and listing or choosing drivers should not pay for httpx. Errors
come out as `penguiflow.llm` errors that say which provider and URL failed, with the secret
removed from anything the provider echoed.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from penguiflow.errors import describe_exception
from penguiflow.llm import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMHTTPError,
    LLMTimeoutError,
)
from penguiflow.resources import AsyncResource
from penguiflow.tracecontext import inject

from ._credentials import Credential, TokenProvider, resolve_credential
from ._redact import redact_secrets
from ._retry import parse_retry_after

__all__ = ["HTTPXTransport"]

_BODY_LIMIT = 500
#: how many distinct tokens a transport remembers to redact: a token provider may rotate
#: tokens while earlier requests are still in flight, and their answers echo the older ones
_REMEMBERED_TOKENS = 8
#: extra headers whose values are credentials too (a gateway's key given in `headers=`)
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|session|password", re.IGNORECASE)


class HTTPXTransport(AsyncResource):
    """POSTs to `base_url + path` with the credential as a header.

    `auth_header` and `auth_prefix` say how the token is sent (`Authorization: Bearer ...`
    by default; Anthropic uses `x-api-key` with no prefix). After a 401 a refreshable
    credential is asked for a fresh token once and the request repeated. `client` is an
    `httpx.AsyncClient` of your own (proxies, mTLS, a mock transport): it is used as given
    and left open by `aclose()`, which closes only a client the transport made."""

    def __init__(
        self,
        base_url: str,
        *,
        provider: str,
        credential: Credential,
        auth_header: str = "Authorization",
        auth_prefix: str = "Bearer ",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        client: Any = None,
    ) -> None:
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise LLMConfigurationError(
                f"{provider}: base_url must start with http:// or https://, got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self._credential = credential
        self._auth_header = auth_header
        self._auth_prefix = auth_prefix
        self._headers = dict(headers or {})
        self.timeout_s = timeout_s
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s)
        )
        #: the tokens recently sent, newest last: an error body may echo any of them
        self._sent_tokens: deque[str] = deque(maxlen=_REMEMBERED_TOKENS)
        self._secret_headers = tuple(
            value for name, value in self._headers.items() if _SECRET_HEADER.search(name)
        )

    @classmethod
    def for_provider(
        cls,
        base_url: str,
        *,
        provider: str,
        provider_name: str,
        api_key: str | None,
        token_provider: TokenProvider | None,
        env_var: str,
        required: bool,
        **options: Any,
    ) -> HTTPXTransport:
        """Resolve the credential (token provider, then key, then `env_var`; `required` for
        the provider's own endpoints) and build the transport with it."""
        credential = resolve_credential(
            api_key=api_key,
            token_provider=token_provider,
            env_var=env_var,
            required=required,
            provider_name=provider_name,
        )
        return cls(base_url, provider=provider, credential=credential, **options)

    def __repr__(self) -> str:
        return f"HTTPXTransport({self.base_url!r}, credential={self._credential!r})"

    async def aclose(self) -> None:
        if self._owns_client and not self._client.is_closed:
            await self._client.aclose()

    async def _request_headers(self, *, force_refresh: bool = False) -> dict[str, str]:
        headers = {"content-type": "application/json", **self._headers}
        # The caller's trace goes with the request (the llm.call span, when observed), so a
        # gateway or a traced model server joins the same trace.
        inject(headers)
        token = await self._credential.token(force_refresh=force_refresh)
        if token:
            # Remembered before it is sent, so the answer to this request is redacted.
            if token in self._sent_tokens:
                self._sent_tokens.remove(token)
            self._sent_tokens.append(token)
            headers[self._auth_header] = f"{self._auth_prefix}{token}"
        return headers

    async def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        import httpx

        url = self.base_url + path
        refreshed = False
        while True:
            headers = await self._request_headers(force_refresh=refreshed)
            try:
                response = await self._client.post(url, json=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise self._timeout(url, exc) from exc
            except httpx.TransportError as exc:
                raise self._unreachable(url, exc) from exc
            if response.status_code == 401 and self._credential.refreshable and not refreshed:
                refreshed = True
                continue
            if response.status_code >= 400:
                raise self._http_error(url, response.status_code, response.text, response.headers)
            try:
                return response.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise LLMHTTPError(
                    f"{self.provider} at {url} answered {response.status_code} with a body "
                    f"that is not JSON ({describe_exception(exc)}): "
                    f"{self._shorten(response.text)!r}",
                    status=502,
                    body=self._shorten(response.text),
                ) from exc

    @asynccontextmanager
    async def post_stream(
        self, path: str, body: Mapping[str, Any]
    ) -> AsyncIterator[AsyncIterator[str]]:
        import httpx

        url = self.base_url + path
        refreshed = False
        while True:
            headers = await self._request_headers(force_refresh=refreshed)
            headers["accept"] = "text/event-stream"
            try:
                async with self._client.stream("POST", url, json=body, headers=headers) as response:
                    if (
                        response.status_code == 401
                        and self._credential.refreshable
                        and not refreshed
                    ):
                        refreshed = True
                        continue
                    if response.status_code >= 400:
                        text = (await response.aread()).decode("utf-8", "replace")
                        raise self._http_error(url, response.status_code, text, response.headers)
                    yield self._lines(response, url)
                    return
            except httpx.TimeoutException as exc:
                raise self._timeout(url, exc) from exc
            except httpx.TransportError as exc:
                raise self._unreachable(url, exc) from exc

    async def _lines(self, response: Any, url: str) -> AsyncIterator[str]:
        import httpx

        try:
            async for line in response.aiter_lines():
                yield line
        except httpx.TimeoutException as exc:
            raise self._timeout(url, exc) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(url, exc) from exc

    # -- errors --------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with every token this transport recently sent, and the values of extra
        headers named like credentials (`*key*`, `*token*`, `*auth*`, ...), replaced by
        `***` in any encoding a provider's answer may hold them (see `redact_secrets`).
        `ProviderClient` uses it on the errors it builds from what the provider sent."""
        return redact_secrets(text, (*self._sent_tokens, *self._secret_headers))

    def _shorten(self, text: str) -> str:
        # Redacted before it is cut, so a secret across the cut is still masked whole.
        text = self.redact(text)
        return text if len(text) <= _BODY_LIMIT else text[:_BODY_LIMIT] + "..."

    def _http_error(
        self, url: str, status: int, text: str, headers: Mapping[str, str]
    ) -> LLMHTTPError:
        detail = _error_message(text) or self._shorten(text) or "(empty body)"
        retry_after = parse_retry_after(headers.get("retry-after"))
        hint = {
            400: "the request was refused; check the model name and options",
            401: "check the API key or token provider",
            403: "the key lacks access to this model or endpoint",
            404: "check base_url and the model name",
            429: "rate limited",
        }.get(status, "the provider failed" if status >= 500 else "")
        message = f"{self.provider} at {url} answered {status}: {self._shorten(detail)}"
        if hint:
            message += f" ({hint})"
        return LLMHTTPError(
            message, status=status, body=self._shorten(text), retry_after_s=retry_after
        )

    def _timeout(self, url: str, exc: Exception) -> LLMTimeoutError:
        return LLMTimeoutError(
            f"{self.provider} at {url} did not answer within {self.timeout_s:g}s "
            f"({type(exc).__name__}); raise timeout_s for long replies or use stream=True"
        )

    def _unreachable(self, url: str, exc: Exception) -> LLMConnectionError:
        return LLMConnectionError(
            f"{self.provider} at {url} could not be reached or dropped the connection "
            f"({type(exc).__name__}: {describe_exception(exc)}); check base_url and the network"
        )


def _error_message(text: str) -> str | None:
    """The `error.message` most providers put in an error body."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None
