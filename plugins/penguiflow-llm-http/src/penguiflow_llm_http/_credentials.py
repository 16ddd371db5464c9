"""Where an adapter's credential comes from: an argument, a token provider, or the environment.

An explicit token provider always wins and is never overridden by an environment variable;
an explicit key comes next; the environment variable is the fallback. The secret never
appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from penguiflow.llm import LLMConfigurationError

__all__ = ["Credential", "TokenProvider", "resolve_credential"]

#: Called as `provider(force_refresh=...)`; returns the token (sync or async). Called before
#: each request, so it can refresh an expiring token; `force_refresh=True` after a 401.
TokenProvider: TypeAlias = Callable[..., "str | Awaitable[str]"]


class Credential:
    """A secret and where it came from (`source`), without ever showing the secret."""

    __slots__ = ("_key", "_provider", "source")

    def __init__(
        self, *, key: str | None = None, provider: TokenProvider | None = None, source: str
    ) -> None:
        self._key = key
        self._provider = provider
        self.source = source

    @property
    def refreshable(self) -> bool:
        return self._provider is not None

    async def token(self, *, force_refresh: bool = False) -> str | None:
        if self._provider is None:
            return self._key
        value = self._provider(force_refresh=force_refresh)
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value:
            raise LLMConfigurationError(
                f"the token provider returned {type(value).__name__}, not a non-empty string"
            )
        return value

    def __repr__(self) -> str:
        return f"Credential(source={self.source!r})"


def resolve_credential(
    *,
    api_key: str | None,
    token_provider: TokenProvider | None,
    env_var: str,
    required: bool,
    provider_name: str,
) -> Credential:
    if token_provider is not None:
        if api_key is not None:
            raise LLMConfigurationError(
                f"{provider_name}: pass api_key= or token_provider=, not both"
            )
        return Credential(provider=token_provider, source="token provider")
    if api_key is not None:
        if not api_key:
            raise LLMConfigurationError(f"{provider_name}: api_key is empty")
        return Credential(key=api_key, source="api_key argument")
    from_env = os.environ.get(env_var)
    if from_env:
        return Credential(key=from_env, source=f"environment variable {env_var}")
    if required:
        raise LLMConfigurationError(
            f"{provider_name}: no credentials; pass api_key=..., pass token_provider=... (a "
            f"callable returning a fresh token), or set the environment variable {env_var}"
        )
    return Credential(source="none")
