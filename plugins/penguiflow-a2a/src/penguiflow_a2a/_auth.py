"""Who is calling: pluggable authenticators that map request headers to a tenant.

An authenticator looks at the request's headers and returns a `Principal` (whose ``tenant``
scopes every task the caller creates or sees), or None when the credentials are missing or
wrong; the server then answers 401 in the binding's error shape. Any object with an async
``authenticate(headers)`` method will do.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from penguiflow.errors import ConfigurationError

__all__ = [
    "APIKeyAuthenticator",
    "Authenticator",
    "BearerTokenAuthenticator",
    "NoAuthentication",
    "Principal",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its tenant (the isolation boundary) and a subject name."""

    tenant: str
    subject: str = "anonymous"


@runtime_checkable
class Authenticator(Protocol):
    """Maps request headers (lower-cased names) to a `Principal`, or None to refuse."""

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None: ...


class NoAuthentication:
    """Everyone is let in, as one tenant. For development and trusted networks only."""

    def __init__(self, tenant: str = "default") -> None:
        self.tenant = tenant

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        return Principal(self.tenant)


def _check_tokens(tokens: Mapping[str, str], what: str) -> dict[str, str]:
    if not tokens:
        raise ConfigurationError(
            f"{what} needs at least one credential: pass a mapping of {what.split()[0]} "
            "to tenant, e.g. {'s3cret': 'acme'}"
        )
    for token, tenant in tokens.items():
        if not isinstance(token, str) or not token or not isinstance(tenant, str) or not tenant:
            raise ConfigurationError(
                f"{what} credentials and tenants must be non-empty strings; got a "
                f"{type(token).__name__} mapped to {tenant!r}"
            )
    return dict(tokens)


def _lookup(tokens: Mapping[str, str], presented: str) -> Principal | None:
    # Compare against every token in constant time, so timing does not reveal a prefix.
    found: Principal | None = None
    for token, tenant in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = Principal(tenant, subject=tenant)
    return found


class BearerTokenAuthenticator:
    """``Authorization: Bearer <token>``; each token maps to a tenant."""

    scheme_name = "bearer"

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = _check_tokens(tokens, "token authenticator")

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return _lookup(self._tokens, token.strip())


class APIKeyAuthenticator:
    """An API key in a header (``X-API-Key`` unless told otherwise); each key maps to a tenant."""

    scheme_name = "apiKey"

    def __init__(self, keys: Mapping[str, str], *, header: str = "X-API-Key") -> None:
        self._tokens = _check_tokens(keys, "key authenticator")
        if not header:
            raise ConfigurationError("APIKeyAuthenticator needs a header name, e.g. 'X-API-Key'")
        self.header = header

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        value = headers.get(self.header.lower(), "").strip()
        if not value:
            return None
        return _lookup(self._tokens, value)
