"""Authorization for MCP servers over HTTP: OAuth 2.1 through the MCP SDK, or a token provider.

Two ways, given to `MCPConnector(config, oauth=..., token_provider=...)` (keyword arguments,
since callables cannot live in a TOML/JSON config):

- `MCPOAuth`: the SDK's OAuth client does the whole dance when the server answers 401:
  discovery of the protected resource and its authorization server, dynamic client
  registration (or a pre-registered `client_id`), the authorization-code grant with PKCE
  (your `redirect_handler` sends the user to the authorize URL, your `callback_handler` returns
  the code), token exchange and refresh. Tokens and the client registration are kept in a
  `TokenStorage` (the SDK's protocol): `InMemoryTokenStorage` for one process,
  `FileTokenStorage(path)` to authorize once and reuse the tokens in later runs.
- `token_provider`: a callable you own, called as `provider(force_refresh=False)` before each
  HTTP request and once more with `force_refresh=True` after a 401; it returns the bearer
  token (sync or async), as the LLM clients' `token_provider` does.

`mcp` is imported only when a connection is made, not by this module.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from penguiflow.errors import PenguiFlowError

from .config import MCPConfigError, MCPServerConfig

if TYPE_CHECKING:
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken

__all__ = [
    "FileTokenStorage",
    "InMemoryTokenStorage",
    "MCPAuthorizationError",
    "MCPOAuth",
    "MCPTokenStorageError",
    "TokenProvider",
    "TokenStorage",
]

#: Called as `provider(force_refresh=...)`; returns the bearer token, or an awaitable of it.
#: Called before each HTTP request (so it can hand out a cached token and renew it when it is
#: about to expire), and with `force_refresh=True` after the server answered 401.
TokenProvider: TypeAlias = Callable[..., "str | Awaitable[str]"]

_T = TypeVar("_T")

#: The format version written into token files (so a later format can tell old files apart).
_FILE_VERSION = 1


class MCPAuthorizationError(PenguiFlowError, RuntimeError):
    """The OAuth flow with a server could not complete (no way to ask the user, a refused
    registration or token exchange...); the message names the server and what to do. Raised
    from a connection attempt, it is the cause of the `MCPConnectionError` you see."""


class MCPTokenStorageError(PenguiFlowError, ValueError):
    """A token file cannot be read or written; the message names the file and the fix."""


class TokenStorage(Protocol):
    """Where OAuth tokens and the client registration are kept: the MCP SDK's
    `mcp.client.auth.TokenStorage` protocol, repeated here so it can be named without
    importing the SDK. Keep one storage per server: the tokens are the server's."""

    async def get_tokens(self) -> OAuthToken | None: ...

    async def set_tokens(self, tokens: OAuthToken) -> None: ...

    async def get_client_info(self) -> OAuthClientInformationFull | None: ...

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None: ...


def _stamp(tokens: OAuthToken) -> dict[str, Any]:
    """The tokens as JSON, with the absolute expiry time: `expires_in` is relative to when the
    server answered, so a stored copy must remember when that was."""
    data = tokens.model_dump(mode="json", exclude_none=True)
    if tokens.expires_in is not None:
        data["expires_at"] = time.time() + int(tokens.expires_in)
    return data


def _unstamp(data: dict[str, Any]) -> OAuthToken:
    """Tokens read back, with `expires_in` counting from now (0 once expired), so the SDK's
    client refreshes an expired access token before using it."""
    from mcp.shared.auth import OAuthToken

    body = dict(data)
    expires_at = body.pop("expires_at", None)
    if isinstance(expires_at, int | float):
        body["expires_in"] = max(0, int(expires_at - time.time()))
    return OAuthToken.model_validate(body)


class InMemoryTokenStorage:
    """Tokens and the client registration held in this object (lost when the process ends)."""

    def __init__(self) -> None:
        self._tokens: dict[str, Any] | None = None
        self._client: OAuthClientInformationFull | None = None

    def __repr__(self) -> str:
        return f"InMemoryTokenStorage(tokens={'yes' if self._tokens else 'no'})"

    async def get_tokens(self) -> OAuthToken | None:
        return None if self._tokens is None else _unstamp(self._tokens)

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._tokens = _stamp(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self._client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._client = client_info


class FileTokenStorage:
    """Tokens and the client registration in a JSON file at `path` (one file per server).

    The file is created with mode 0600 (its directory, when created, 0700) and replaced
    atomically on each write, so a crash never leaves half a file and other users cannot read
    the tokens. A file that is not what this class writes raises `MCPTokenStorageError`
    naming it; deleting it makes the next connection authorize again."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        # Reads and writes run in worker threads; the lock keeps two connectors that share
        # this storage from interleaving a read-modify-write.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileTokenStorage({str(self.path)!r})"

    async def get_tokens(self) -> OAuthToken | None:
        tokens = (await self._read()).get("tokens")
        if tokens is None:
            return None
        return self._parse(lambda: _unstamp(tokens), "tokens")

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self._update("tokens", _stamp(tokens))

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        from mcp.shared.auth import OAuthClientInformationFull

        client = (await self._read()).get("client_info")
        if client is None:
            return None
        return self._parse(lambda: OAuthClientInformationFull.model_validate(client), "client_info")

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._update("client_info", client_info.model_dump(mode="json", exclude_none=True))

    # -- file access (in a worker thread: disk I/O must not stall the event loop) -------------

    async def _read(self) -> dict[str, Any]:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self._read_sync)

    async def _update(self, key: str, value: dict[str, Any]) -> None:
        import anyio.to_thread

        def update() -> None:
            with self._lock:
                data = self._load()
                data[key] = value
                self._write(data)

        await anyio.to_thread.run_sync(update)

    def _read_sync(self) -> dict[str, Any]:
        with self._lock:
            return self._load()

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": _FILE_VERSION}
        except OSError as exc:
            raise MCPTokenStorageError(
                f"cannot read the MCP token file {self.path}: {exc.strerror or exc}; check "
                "its permissions, or give FileTokenStorage another path"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self._corrupt(f"it is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or data.get("version") != _FILE_VERSION:
            raise self._corrupt(f"it is not a version-{_FILE_VERSION} PenguiFlow MCP token file")
        return data

    def _parse(self, parse: Callable[[], _T], key: str) -> _T:
        from pydantic import ValidationError

        try:
            return parse()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise self._corrupt(f"its {key!r} entry is invalid ({where}: {first['msg']})") from None

    def _corrupt(self, why: str) -> MCPTokenStorageError:
        return MCPTokenStorageError(
            f"the MCP token file {self.path} cannot be used: {why}. Delete it (the server will "
            "ask for authorization again on the next connection) or give FileTokenStorage "
            "another path"
        )

    def _write(self, data: dict[str, Any]) -> None:
        directory = self.path.parent
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600; os.replace makes the new content appear
        # at once (same directory, so same file system).
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


RedirectHandler: TypeAlias = Callable[[str], Awaitable[None]]
CallbackHandler: TypeAlias = Callable[[], "Awaitable[AuthorizationCodeResult]"]


@dataclass(frozen=True, kw_only=True)
class MCPOAuth:
    """OAuth 2.1 for one MCP server over HTTP, done by the MCP SDK's client.

    - `storage`: where tokens and the client registration live (default: in memory, per
      `MCPOAuth` object). Use a `FileTokenStorage` per server to authorize only once.
    - `redirect_handler(url)`: send the user to the authorization URL (open a browser, print
      it...). `callback_handler()`: wait for the redirect to `redirect_uri` and return an
      `mcp.client.auth.AuthorizationCodeResult(code=..., state=...)` from its query string.
      Both are needed only when the server asks for a new authorization; without them that
      case is an error saying so (stored or refreshable tokens still work).
    - `redirect_uri`: where the authorization server sends the user back (registered with the
      server); required with the handlers.
    - `scopes`: the scopes to ask for; by default the ones the server names in its 401 answer
      or its metadata.
    - `client_id` (and `client_secret` for a confidential client): a client registered with
      the authorization server beforehand; without them the client registers itself
      dynamically (RFC 7591) and keeps the registration in `storage`.
    """

    storage: TokenStorage = field(default_factory=InMemoryTokenStorage)
    redirect_handler: RedirectHandler | None = None
    callback_handler: CallbackHandler | None = None
    redirect_uri: str | None = None
    scopes: Sequence[str] | None = None
    client_name: str = "PenguiFlow"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.redirect_handler is None) != (self.callback_handler is None):
            raise MCPConfigError(
                "MCPOAuth needs both redirect_handler= (sends the user to the authorization "
                "URL) and callback_handler= (returns the code from the redirect), or neither"
            )
        if self.redirect_handler is not None and not self.redirect_uri:
            raise MCPConfigError(
                "MCPOAuth with redirect_handler= needs redirect_uri=, the address the "
                "authorization server sends the user back to (e.g. http://127.0.0.1:8765/callback)"
            )
        if self.redirect_uri is not None and not self.redirect_uri.startswith(
            ("http://", "https://")
        ):
            raise MCPConfigError(
                f"MCPOAuth redirect_uri {self.redirect_uri!r} must start with http:// or https://"
            )
        if self.client_secret is not None and self.client_id is None:
            raise MCPConfigError("MCPOAuth client_secret= needs the client_id= it belongs to")
        if isinstance(self.scopes, str):
            raise MCPConfigError(
                f"MCPOAuth scopes= takes a list of scopes, not the string {self.scopes!r}"
            )


def check_auth_options(
    config: MCPServerConfig, *, oauth: MCPOAuth | None, token_provider: TokenProvider | None
) -> None:
    """Refuse authorization options that cannot apply to `config` (for `MCPConnector`)."""
    options = (("oauth", oauth), ("token_provider", token_provider))
    given = [name for name, value in options if value is not None]
    if not given:
        return
    what = " and ".join(f"{name}=" for name in given)
    if len(given) > 1:
        raise MCPConfigError(
            f"server {config.name!r}: pass oauth= or token_provider=, not both (each sets the "
            "Authorization header)"
        )
    if config.command is not None:
        raise MCPConfigError(
            f"server {config.name!r} is a stdio server (command=); {what} applies only to "
            "servers over HTTP (url=). A stdio server takes its credentials from env="
        )
    if config.bearer_token is not None:
        raise MCPConfigError(
            f"server {config.name!r} has both bearer_token and {what}; both set the "
            f"Authorization header, so drop bearer_token from its config or drop {what}"
        )
    if any(name.lower() == "authorization" for name in config.headers):
        raise MCPConfigError(
            f"server {config.name!r} sets an Authorization header in headers and passes "
            f"{what}; remove the header (the {given[0]} sets it)"
        )
    if (
        oauth is not None
        and token_provider is None
        and not callable(getattr(oauth.storage, "get_tokens", None))
    ):
        raise MCPConfigError(
            f"server {config.name!r}: MCPOAuth storage {oauth.storage!r} does not implement "
            "TokenStorage (get_tokens, set_tokens, get_client_info, set_client_info)"
        )
    if token_provider is not None and not callable(token_provider):
        raise MCPConfigError(
            f"server {config.name!r}: token_provider must be a callable returning the bearer "
            f"token, not {type(token_provider).__name__}"
        )
