"""Who is calling: principals, the authenticator protocol and the bearer-token authenticator."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from penguiflow.errors import ConfigurationError, PenguiFlowError

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

__all__ = [
    "AnonymousAuthenticator",
    "AuthenticationError",
    "Authenticator",
    "BearerTokenAuthenticator",
    "PermissionDeniedError",
    "Principal",
    "parse_token_spec",
]


class AuthenticationError(PenguiFlowError):
    """The request carries no credentials, or ones nobody issued (HTTP 401)."""


class PermissionDeniedError(PenguiFlowError):
    """The caller is known but may not use this server (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The owner of a request: every session belongs to exactly one (tenant, user) pair, and
    a request only ever reaches sessions of its own principal."""

    tenant: str
    user: str

    def __post_init__(self) -> None:
        for field, value in (("tenant", self.tenant), ("user", self.user)):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(
                    f"Principal.{field} must be a non-empty string, got {value!r}"
                )


@runtime_checkable
class Authenticator(Protocol):
    """Turns a request (HTTP or WebSocket handshake) into a `Principal`.

    Return `None` (or raise `AuthenticationError`) when the credentials are missing or
    unknown: the server answers 401. Raise `PermissionDeniedError` for a known caller who is
    refused: the server answers 403. Called once per request or WebSocket connection."""

    async def authenticate(self, connection: HTTPConnection) -> Principal | None: ...


class AnonymousAuthenticator:
    """Everyone is the same principal: for a server only its own machine can reach
    (`penguiflow serve-session --no-auth`), never for one exposed to a network."""

    def __init__(self, principal: Principal | None = None) -> None:
        self.principal = principal or Principal("default", "anonymous")

    async def authenticate(self, connection: HTTPConnection) -> Principal | None:
        return self.principal


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class BearerTokenAuthenticator:
    """`Authorization: Bearer <token>`, each token mapped to the principal it stands for.

    Tokens are kept as SHA-256 digests and compared in constant time, so neither a memory
    dump nor response timing gives them away. Browsers cannot set headers on `EventSource` or
    `WebSocket`; with `allow_query_token=True` a GET or WebSocket request may pass the token
    as `?access_token=` instead (it then lands in access logs: prefer short-lived tokens)."""

    def __init__(self, tokens: Mapping[str, Principal], *, allow_query_token: bool = False) -> None:
        if not tokens:
            raise ConfigurationError(
                "BearerTokenAuthenticator needs at least one token; pass {token: Principal(...)}"
            )
        digests: dict[bytes, Principal] = {}
        for token, principal in tokens.items():
            if not isinstance(token, str) or len(token) < 8:
                raise ConfigurationError(
                    "every bearer token must be a string of at least 8 characters; "
                    "generate one with `python -c 'import secrets; print(secrets.token_urlsafe())'`"
                )
            if not isinstance(principal, Principal):
                raise ConfigurationError(
                    f"the token map's values must be Principal objects, got "
                    f"{type(principal).__name__}"
                )
            digests[_digest(token)] = principal
        self._digests = digests
        self.allow_query_token = allow_query_token

    def _presented(self, connection: HTTPConnection) -> str | None:
        header = connection.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthenticationError("the Authorization header must read 'Bearer <token>'")
            return value.strip()
        if self.allow_query_token and (
            connection.scope["type"] == "websocket" or connection.scope.get("method") == "GET"
        ):
            return connection.query_params.get("access_token")
        return None

    async def authenticate(self, connection: HTTPConnection) -> Principal | None:
        token = self._presented(connection)
        if token is None:
            return None
        presented = _digest(token)
        found: Principal | None = None
        # Compare against every digest so the time taken does not depend on which one matched.
        for digest, principal in self._digests.items():
            if hmac.compare_digest(digest, presented):
                found = principal
        return found


def parse_token_spec(spec: str) -> dict[str, Principal]:
    """Tokens from text: entries separated by newlines or `;`, each `token tenant/user`
    (`#` starts a comment). The format of `--token-file` and `PENGUIFLOW_SESSION_TOKENS`."""
    tokens: dict[str, Principal] = {}
    for number, raw in enumerate(spec.replace(";", "\n").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        owner = parts[1].split("/") if len(parts) == 2 else []
        if len(owner) != 2 or not all(owner):
            raise ConfigurationError(
                f"token entry {number} is malformed: write 'TOKEN TENANT/USER', e.g. "
                "'s3cr3t-token-1 acme/alice'"
            )
        if parts[0] in tokens:
            raise ConfigurationError(f"token entry {number} repeats a token given before")
        tokens[parts[0]] = Principal(owner[0], owner[1])
    if not tokens:
        raise ConfigurationError("no tokens found: write one 'TOKEN TENANT/USER' entry per line")
    return tokens
