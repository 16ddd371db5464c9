"""One MCP session, owned by one task.

Concurrency follows anyio (the MCP SDK is built on it; the backend is asyncio): the session
is owned by one task, timeouts are cancel scopes, and `close()` cancels and awaits the owner
task, so no task outlives the connector that made the session.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio

from penguiflow.errors import describe_exception
from penguiflow.tracecontext import TRACEPARENT, SpanContext, inject

from ._errors import MCPConnectionError
from ._notifications import (
    ChangeListener,
    listen_supported,
)
from ._stderr import StderrCapture, server_logger
from .auth import MCPAuthorizationError, MCPOAuth, TokenProvider
from .config import MCPServerConfig

__all__ = ["SDK_TIMEOUT_MARGIN_S", "Session", "describe_failure"]

logger = logging.getLogger("penguiflow.mcp")

#: how long a closing session may take to shut down cleanly before it is cancelled
_CLOSE_GRACE_S = 5.0
#: the SDK's and HTTP client's own timeouts are set this much later than ours, so that our
#: cancel scope, not theirs, decides when a call has taken too long (theirs would be taken for
#: a dropped connection and the call retried)
SDK_TIMEOUT_MARGIN_S = 5.0


class Session:
    """One MCP session, owned by one task.

    The SDK's client must be entered and left in the same task (anyio's rule for task groups
    and cancel scopes), so an owner task holds it open and other tasks only send requests
    through it. A connector used without `async with` has no enclosing scope that could own
    that task, so it runs on its own and `close()` ends it and waits for it."""

    def __init__(
        self,
        config: MCPServerConfig,
        *,
        oauth: MCPOAuth | None = None,
        token_provider: TokenProvider | None = None,
        client_options: Mapping[str, Any] | None = None,
        changes: ChangeListener | None = None,
    ) -> None:
        self.config = config
        self.oauth = oauth
        self.token_provider = token_provider
        #: keyword arguments for the SDK's `Client`: the connector's handlers of server
        #: notifications and of the client capabilities it answers (sampling, elicitation,
        #: roots); see MCPConnector._client_options
        self.client_options = dict(client_options or {})
        #: the `subscriptions/listen` stream kept open for a 2026-07-28 session's life (list
        #: changes and resource updates come only on it at that protocol version)
        self.changes = changes
        self.client: Any = None
        self.loop = asyncio.get_running_loop()
        self._ready = anyio.Event()  # the handshake is done, or the owner has ended
        self._stop = anyio.Event()
        self._failure: Exception | None = None
        self._task: asyncio.Task[None] | None = None
        #: the last HTTP error status the server answered (the SDK's errors do not carry it)
        self.http_status: int | None = None
        #: every HTTP error status answered so far, so a failed request can name the statuses
        #: answered while it was in flight (`statuses_since`)
        self.http_errors: list[int] = []
        #: set when the server answered that it does not know this session (a restarted
        #: server: 404 per the spec, 400 naming the session from some servers): nothing sent
        #: with this session id ran, so the request may be sent again on a new session
        self.lost_status: int | None = None
        #: the stdio server's stderr (logged to `penguiflow.mcp.server.<name>`), made when
        #: the process is started
        self.stderr: StderrCapture | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and self._task is not None and not self._task.done()

    async def open(self) -> None:
        self._task = self.loop.create_task(self._own(), name=f"penguiflow-mcp:{self.config.name}")
        try:
            with anyio.move_on_after(self.config.connect_timeout_s):
                await self._ready.wait()
        except BaseException:
            # Cancelled while connecting: the half-open session must not outlive the caller.
            with anyio.CancelScope(shield=True):
                await self.close()
            raise
        if self.client is not None:
            return
        handshake_done = self._ready.is_set()
        failure = self._failure
        await self.close()
        said = await self._stderr_said()
        if not handshake_done:
            raise MCPConnectionError(
                f"MCP server {self.config.name!r} did not complete the MCP handshake within "
                f"{self.config.connect_timeout_s:g}s; is {self._target()} an MCP server, and "
                f"does it speak MCP on stdout (not logs)?{said}"
            )
        reason = describe_failure(failure) if failure is not None else "it closed the connection"
        raise MCPConnectionError(
            f"MCP server {self.config.name!r} could not be started or reached at "
            f"{self._target()}: {reason}{self._status_hint()}{said}"
        ) from failure

    async def _stderr_said(self) -> str:
        """What the server wrote on stderr before it failed, for the error (the reason a
        server dies at start is there, not in the protocol's "Connection closed")."""
        if self.stderr is None:
            return ""
        await self.stderr.drain()
        tail = self.stderr.tail()
        return f"; its stderr ended with: {tail}" if tail else "; it wrote nothing on stderr"

    def _status_hint(self) -> str:
        status = self.http_status
        if status in (401, 403) and self.oauth is not None:
            if isinstance(_innermost(self._failure), MCPAuthorizationError):
                return ""  # that error says what went wrong with the authorization
            return (
                f" (HTTP {status} even after OAuth authorization: the server refused the "
                "token it issued; check that its scopes cover this server (MCPOAuth scopes=), "
                "or delete the stored tokens (the MCPOAuth storage) to authorize again)"
            )
        if status in (401, 403) and self.token_provider is not None:
            return (
                f" (HTTP {status}: the server refused the token from token_provider, even "
                "the one it returned with force_refresh=True; check what it returns)"
            )
        if status in (401, 403):
            return (
                f" (HTTP {status}: the server refused the credentials; check bearer_token "
                "or api_key)"
            )
        if status is not None:
            return f" (HTTP {status})"
        return ""

    def _http_auth(self) -> Any:
        """The httpx2 `auth=` for `oauth=` or `token_provider=` (None without either). Made
        for each session: the OAuth client reloads its tokens from the storage, which
        outlives the session."""
        if self.oauth is None and self.token_provider is None:
            return None
        from ._httpauth import TokenProviderAuth, oauth_auth

        if self.oauth is not None:
            return oauth_auth(self.oauth, str(self.config.url), self.config.name)
        assert self.token_provider is not None
        return TokenProviderAuth(self.token_provider, self.config.name)

    def _target(self) -> str:
        if self.config.command is not None:
            return " ".join([self.config.command, *self.config.args])
        return str(self.config.url)

    async def _own(self) -> None:
        """The owner task: open the client, serve until asked to stop, close it. Failures
        are recorded for `open()` (or logged, once serving); cancellation propagates."""
        try:
            async with AsyncExitStack() as stack:
                self.client = await self._enter_client(stack)
                if self.changes is not None and listen_supported(self.client):
                    # In the owner's scope: closing the session ends the stream; open before
                    # the session is ready, so no change made once it is used is missed.
                    listening = await stack.enter_async_context(anyio.create_task_group())
                    stack.callback(listening.cancel_scope.cancel)
                    await listening.start(self.changes.run, self.client, self._stop.set)
                if self.stderr is not None:
                    # The server holds its own copy now; ours would hide its exit from the
                    # reader.
                    self.stderr.release()
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # an anyio group of Exceptions is an Exception too
            self._failure = exc
            if self._ready.is_set():
                logger.warning(
                    "MCP server %r dropped the connection: %s",
                    self.config.name,
                    describe_failure(exc),
                )
        finally:
            self.client = None
            if self.stderr is not None:
                self.stderr.release()
            self._ready.set()  # wakes open() whatever happened

    async def _enter_client(self, stack: AsyncExitStack) -> Any:
        from mcp import Client

        read_timeout = self.config.timeout_s + SDK_TIMEOUT_MARGIN_S
        if self.config.command is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            target = StdioServerParameters(
                command=self.config.command,
                args=list(self.config.args),
                env=self.config.resolved_env() or None,
                cwd=self.config.cwd,
            )
            self.stderr = StderrCapture(server_logger("penguiflow.mcp", self.config.name))
            stdio = stdio_client(target, errlog=self.stderr.writer)
            return await stack.enter_async_context(
                Client(stdio, read_timeout_seconds=read_timeout, **self.client_options)
            )
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async def record(response: Any) -> None:
            status = response.status_code
            if status < 400:
                return
            self.http_status = status
            self.http_errors.append(status)
            if response.request.headers.get("mcp-session-id") and (
                status == 404 or (status == 400 and await _names_the_session(response))
            ):
                self.lost_status = status

        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=self.config.resolved_headers(),
                # Later than our scope too, like the SDK's timeout (see SDK_TIMEOUT_MARGIN_S).
                timeout=httpx2.Timeout(read_timeout, connect=self.config.connect_timeout_s),
                event_hooks={"request": [trace_header], "response": [record]},
                auth=self._http_auth(),
            )
        )
        transport = streamable_http_client(str(self.config.url), http_client=http)
        return await stack.enter_async_context(
            Client(transport, read_timeout_seconds=read_timeout, **self.client_options)
        )

    def statuses_since(self, mark: int) -> str:
        """` (HTTP 404)`-style text for the error statuses answered since `mark`, or ""."""
        statuses = sorted(set(self.http_errors[mark:]))
        return f" (HTTP {', '.join(map(str, statuses))})" if statuses else ""

    async def close(self) -> None:
        """End the owner task and wait until it has ended (idempotent). A serving session gets
        `_CLOSE_GRACE_S` to leave the SDK's context cleanly (a stdio server is terminated,
        HTTP streams are closed); after that, or when the caller is cancelled meanwhile, the
        owner is cancelled, and awaited all the same."""
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        try:
            if self.client is not None:
                with anyio.move_on_after(_CLOSE_GRACE_S):
                    await asyncio.wait([task])
        finally:
            if not task.done():
                task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([task])


async def trace_header(request: Any) -> None:
    """httpx2 request hook: the `traceparent` header of the trace the request belongs to.

    The SDK sends requests from its own tasks, where the caller's current span is not set;
    a tool call carries the caller's span in its `params._meta.traceparent` (see
    `MCPConnector._call_once`), so the header is read from there. Other requests get the
    current span, when the sending task has one."""
    if any(key.lower() == TRACEPARENT for key in request.headers):
        return
    carried = _meta_traceparent(request)
    if carried is not None:
        request.headers[TRACEPARENT] = carried
        return
    inject(request.headers)


def _meta_traceparent(request: Any) -> str | None:
    if request.method != "POST":
        return None
    try:
        body = json.loads(request.content)
    except (ValueError, TypeError, UnicodeDecodeError, RuntimeError):
        return None  # not JSON, or a streamed body (never a tool call)
    params = body.get("params") if isinstance(body, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    value = meta.get(TRACEPARENT) if isinstance(meta, dict) else None
    return value if SpanContext.parse(value) is not None else None


async def _names_the_session(response: Any) -> bool:
    """Whether a 400 answer says the session is unknown (as servers built on the TypeScript
    SDK answer a session id they do not know: "Bad Request: No valid session ID provided").
    The body is read here; the SDK reads it again from httpx's cache."""
    try:
        body = (await response.aread()).decode("utf-8", "replace").lower()
    except Exception:  # a body we cannot read is not evidence of a lost session
        return False
    return "session" in body


def _innermost(exc: BaseException | None) -> BaseException | None:
    """The first leaf of an exception group (anyio groups wrap the real cause)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe_failure(exc: BaseException) -> str:
    """The innermost useful message of an exception (anyio groups wrap the real cause);
    safe with exceptions whose `__str__` raises."""
    seen = exc
    while isinstance(seen, BaseExceptionGroup) and seen.exceptions:
        seen = seen.exceptions[0]
    text, kind = describe_exception(seen), type(seen).__name__
    return text if text.startswith(kind) else f"{kind}: {text}"
