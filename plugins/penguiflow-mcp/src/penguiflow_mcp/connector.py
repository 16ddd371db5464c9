"""`MCPConnector`: one MCP server's tools as namespaced tool specs, called over one session.

The session opens on first use and is reused; it is opened again after the connection drops
or when used from another event loop. Calls are bounded by `max_concurrency`, each by
`timeout_s`, and retried `retries` times after a dropped connection. `mcp` is imported only
when a connection is made, so installing this plugin does not slow `import penguiflow`.

Concurrency follows anyio (the MCP SDK is built on it; the backend is asyncio): the session
is owned by one task, timeouts are cancel scopes, and `aclose()` (or leaving
`async with connector:`) cancels and awaits the owner task, so no task outlives the connector.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from penguiflow.catalog import NodeSpec
from penguiflow.errors import PenguiFlowError, describe_exception
from penguiflow.resources import AsyncResource

from ._flows import current_flow
from ._results import ArtifactStore, MCPResourceContent, content_value, resource_content
from ._schema import ArgumentChecker
from ._stderr import StderrCapture, server_logger
from .config import MCPServerConfig

__all__ = [
    "MCPConnectionError",
    "MCPConnector",
    "MCPError",
    "MCPResourceContent",
    "MCPTool",
    "MCPToolError",
]

logger = logging.getLogger("penguiflow.mcp")


#: how long a closing session may take to shut down cleanly before it is cancelled
_CLOSE_GRACE_S = 5.0
#: the SDK's and HTTP client's own timeouts are set this much later than ours, so that our
#: cancel scope, not theirs, decides when a call has taken too long (theirs would be taken for
#: a dropped connection and the call retried)
_SDK_TIMEOUT_MARGIN_S = 5.0


class MCPError(PenguiFlowError, RuntimeError):
    """Something went wrong with an MCP server; the message names the server."""


class MCPConnectionError(MCPError, ConnectionError):
    """The server could not be started or reached, or dropped the connection."""


class MCPToolError(MCPError):
    """The tool ran and reported an error, or its arguments do not match its schema."""


@dataclass(frozen=True, slots=True)
class MCPTool:
    """A tool as the server lists it (`name` is the server's own name for it).

    The hints come from the tool's MCP annotations (`readOnlyHint`, `destructiveHint`,
    `idempotentHint`, `openWorldHint`); None means the server did not say. They are hints
    from the server, used to describe the tool and to decide whether a call interrupted by
    a crash may be sent again, never as a security boundary."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    title: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None

    @property
    def retry_safe(self) -> bool:
        """Whether running the call twice does no harm (read-only or idempotent)."""
        return bool(self.read_only or self.idempotent)

    @property
    def side_effects(self) -> Literal["read", "write", "external"]:
        """The catalog's `side_effects`: "read" for a read-only tool, "write" for one the
        server marks as changing things, "external" when it says nothing."""
        if self.read_only:
            return "read"
        if self.read_only is False or self.destructive is not None or self.idempotent:
            return "write"
        return "external"

    @property
    def safety_notes(self) -> str | None:
        if self.read_only:
            return None
        if self.destructive:
            return (
                "destructive: the server says this tool may delete or overwrite data; "
                "call it only when the user asked for that"
            )
        if self.destructive is False:
            return "additive: the server says this tool changes data but does not delete any"
        return None


def _tool_from_listing(tool: Any) -> MCPTool:
    hints = tool.annotations
    # The spec's defaults (destructiveHint true, idempotentHint false) apply only to tools
    # that declare annotations; a tool with none is left as "external", unknown.
    return MCPTool(
        name=tool.name,
        description=tool.description or tool.title or tool.name,
        input_schema=dict(tool.input_schema or {"type": "object"}),
        output_schema=dict(tool.output_schema) if tool.output_schema else None,
        title=tool.title or (hints.title if hints is not None else None),
        read_only=hints.read_only_hint if hints is not None else None,
        destructive=hints.destructive_hint if hints is not None else None,
        idempotent=hints.idempotent_hint if hints is not None else None,
        open_world=hints.open_world_hint if hints is not None else None,
    )


class _Session:
    """One MCP session, owned by one task.

    The SDK's client must be entered and left in the same task (anyio's rule for task groups
    and cancel scopes), so an owner task holds it open and other tasks only send requests
    through it. A connector used without `async with` has no enclosing scope that could own
    that task, so it runs on its own and `close()` ends it and waits for it."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
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
        reason = _describe(failure) if failure is not None else "it closed the connection"
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
        if status in (401, 403):
            return (
                f" (HTTP {status}: the server refused the credentials; check bearer_token "
                "or api_key)"
            )
        if status is not None:
            return f" (HTTP {status})"
        return ""

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
                    "MCP server %r dropped the connection: %s", self.config.name, _describe(exc)
                )
        finally:
            self.client = None
            if self.stderr is not None:
                self.stderr.release()
            self._ready.set()  # wakes open() whatever happened

    async def _enter_client(self, stack: AsyncExitStack) -> Any:
        from mcp import Client

        read_timeout = self.config.timeout_s + _SDK_TIMEOUT_MARGIN_S
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
            return await stack.enter_async_context(Client(stdio, read_timeout_seconds=read_timeout))
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
                # Later than our scope too, like the SDK's timeout (see _SDK_TIMEOUT_MARGIN_S).
                timeout=httpx2.Timeout(read_timeout, connect=self.config.connect_timeout_s),
                event_hooks={"response": [record]},
            )
        )
        transport = streamable_http_client(str(self.config.url), http_client=http)
        return await stack.enter_async_context(Client(transport, read_timeout_seconds=read_timeout))

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


async def _names_the_session(response: Any) -> bool:
    """Whether a 400 answer says the session is unknown (as servers built on the TypeScript
    SDK answer a session id they do not know: "Bad Request: No valid session ID provided").
    The body is read here; the SDK reads it again from httpx's cache."""
    try:
        body = (await response.aread()).decode("utf-8", "replace").lower()
    except Exception:  # a body we cannot read is not evidence of a lost session
        return False
    return "session" in body


def _describe(exc: BaseException) -> str:
    """The innermost useful message of an exception (anyio groups wrap the real cause);
    safe with exceptions whose `__str__` raises."""
    seen = exc
    while isinstance(seen, BaseExceptionGroup) and seen.exceptions:
        seen = seen.exceptions[0]
    text, kind = describe_exception(seen), type(seen).__name__
    return text if text.startswith(kind) else f"{kind}: {text}"


class MCPConnector(AsyncResource):
    """The tools of one MCP server (a `penguiflow.connectors.Connector`).

    `await connector.aclose()` closes the session (idempotent); `async with connector:` closes
    it on the way out. A closed connector stays usable: the next call opens a new session."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self.name = config.name
        self._session: _Session | None = None
        #: the loop `_opening` and `_gate` were made for: made again for each event loop, so
        #: a lock or a gate slot held by a call on a loop that died cannot block another loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: anyio.Lock | None = None
        self._gate: anyio.Semaphore | None = None
        self._tools: dict[str, MCPTool] | None = None
        #: each tool's argument validator, built on first use and dropped with the listing
        self._checkers: dict[str, ArgumentChecker] = {}
        #: the running flows this connector was used from (see `release_flow`)
        self._flows: weakref.WeakSet[Any] = weakref.WeakSet()
        self._artifacts = ArtifactStore(
            config.name,
            max_items=config.max_artifacts,
            max_bytes=config.max_artifact_bytes,
        )

    def __repr__(self) -> str:
        return f"MCPConnector({self.name!r}, {self.config.transport})"

    # -- the Connector protocol --------------------------------------------------------------

    async def list_tools(self) -> list[MCPTool]:
        """The server's tools (fetched once per connection)."""
        if self._tools is None:
            listing = await self._request("list its tools", lambda c: c.list_tools())
            self._tools = {tool.name: _tool_from_listing(tool) for tool in listing.tools}
            self._checkers = {}
        return list(self._tools.values())

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> Any:
        """Call `tool` with `arguments` (checked against its schema first)."""
        await self.list_tools()
        tools = self._tools or {}
        spec = tools.get(tool)
        if spec is None:
            raise MCPToolError(
                f"MCP server {self.name!r} has no tool {tool!r}; it has: {', '.join(sorted(tools))}"
            )
        args = dict(arguments)
        checker = self._checkers.get(tool)
        if checker is None:
            checker = ArgumentChecker(f"{self.name}.{tool}", spec.input_schema)
            self._checkers[tool] = checker
        errors = checker.errors(args)
        if errors:
            raise MCPToolError(
                f"arguments for {self.name}.{tool} do not match its schema (not sent): "
                f"{'; '.join(errors)}"
            )
        _, gate = self._for_this_loop()
        async with gate:
            return await self._call_with_retries(tool, args)

    # -- catalog -------------------------------------------------------------------------------

    async def tool_specs(self) -> list[NodeSpec]:
        """Every tool as a `NodeSpec` named `<server>.<tool>`, calling through this connector."""
        specs = []
        for tool in await self.list_tools():
            extra: dict[str, Any] = {"mcp_server": self.name, "mcp_tool": tool.name}
            if tool.title:
                extra["title"] = tool.title
            spec = NodeSpec.from_schema(
                f"{self.name}.{tool.name}",
                desc=tool.description,
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
                call=_bound(self, tool.name),
                side_effects=tool.side_effects,
                tags=("mcp", self.name),
                extra=extra,
            )
            if tool.safety_notes is not None:
                spec = dataclasses.replace(spec, safety_notes=tool.safety_notes)
            specs.append(spec)
        return specs

    def artifact(self, ref: str) -> tuple[str, bytes | str]:
        """`(mime_type, content)` of a result kept out of the prompt (`ref` from the result):
        text as `str`, binary content as its decoded bytes. References are held in a bounded
        store (`max_artifacts`, `max_artifact_bytes`); an evicted one raises
        `UnknownNameError` saying so."""
        return self._artifacts.get(ref)

    async def read_resource(self, uri: str) -> list[MCPResourceContent]:
        """The contents of the resource at `uri` (for instance a `resource_link` a tool
        returned): text resources as `str`, binary ones as decoded bytes."""
        read = await self._request(f"read the resource {uri!r}", lambda c: c.read_resource(uri))
        return [resource_content(contents) for contents in read.contents]

    def release_flow(self, flow: Any) -> bool:
        """`flow` stopped: whether the session should close now, that is whether `flow`
        used this connector and no other running flow did. A session only code outside any
        flow used is left open: its owner closes it (`aclose`, `async with`)."""
        if flow not in self._flows:
            return False
        self._flows.discard(flow)
        return not self._flows

    async def aclose(self) -> None:
        """Close the session: its owner task is ended and awaited (idempotent)."""
        session, self._session = self._session, None
        # A session made on another event loop ended with that loop (asyncio.run cancels the
        # tasks it leaves); it cannot be awaited from this one.
        if session is not None and session.loop is asyncio.get_running_loop():
            await session.close()

    # -- internals -----------------------------------------------------------------------------

    def _for_this_loop(self) -> tuple[anyio.Lock, anyio.Semaphore]:
        """The opening lock and the concurrency gate of the running loop, made once per loop
        so that concurrent first calls share them."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._opening is None or self._gate is None:
            self._loop = loop
            self._opening = anyio.Lock()
            self._gate = anyio.Semaphore(self.config.max_concurrency)
        return self._opening, self._gate

    async def _connected(self) -> _Session:
        flow = current_flow()
        if flow is not None:
            self._flows.add(flow)
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and session.loop is loop and session.alive:
            return session
        opening, _ = self._for_this_loop()
        async with opening:
            session = self._session
            if session is not None and session.loop is loop and session.alive:
                return session
            if session is not None and session.loop is loop:
                await session.close()
            fresh = _Session(self.config)
            await fresh.open()
            self._session = fresh
            self._tools = None if session is not None else self._tools
            return fresh

    async def _request(self, what: str, action: Callable[[Any], Awaitable[Any]]) -> Any:
        """One request other than a tool call (a listing, a read), bounded by `timeout_s`.
        A session the server has forgot (restarted while we were idle) is reopened and the
        request sent once more: the server never ran it."""
        reopened = False
        while True:
            session = await self._connected()
            mark = len(session.http_errors)
            result: Any = None
            try:
                with anyio.move_on_after(self.config.timeout_s):
                    result = await action(session.client)
            except Exception as exc:
                if session.lost_status is not None and not reopened:
                    reopened = True
                    await self._forget(session, what)
                    continue
                raise MCPConnectionError(
                    f"MCP server {self.name!r} failed to {what}"
                    f"{session.statuses_since(mark)}: {_describe(exc)}{self._lost(session)}"
                ) from exc
            if result is None:
                raise MCPConnectionError(
                    f"MCP server {self.name!r} did not {what} within "
                    f"{self.config.timeout_s:g}s (timeout_s)"
                )
            return result

    async def _forget(self, session: _Session, what: str) -> None:
        logger.info(
            "MCP server %r no longer knows our session (HTTP %s; restarted?); opening a new "
            "session to %s",
            self.name,
            session.lost_status,
            what,
        )
        await session.close()

    def _lost(self, session: _Session) -> str:
        if session.lost_status is None:
            return ""
        return (
            f"; the server does not know the session (HTTP {session.lost_status}) even "
            "after it was reopened"
        )

    async def _call_with_retries(self, tool: str, args: dict[str, Any]) -> Any:
        spec = (self._tools or {})[tool]
        attempt = 0
        reopened = False
        while True:
            try:
                session = await self._connected()
            except MCPConnectionError as exc:
                if attempt == 0:
                    raise
                raise MCPConnectionError(
                    f"MCP server {self.name!r} crashed or dropped the connection during {tool}, "
                    f"and reconnecting failed: {exc}"
                ) from exc
            mark = len(session.http_errors)
            try:
                result = await self._call_once(session, tool, args)
            except MCPToolError:
                raise
            except Exception as exc:
                if session.lost_status is not None and not reopened:
                    # The server answered before running anything: it did not know the
                    # session. Safe to send again, whatever the tool does.
                    reopened = True
                    await self._forget(session, f"call {tool}")
                    continue
                status = session.statuses_since(mark)
                if _is_protocol_error(exc):
                    raise MCPToolError(
                        f"{self.name}.{tool} failed{status}: {_describe(exc)}{self._lost(session)}"
                    ) from exc
                await session.close()
                if not spec.retry_safe:
                    raise MCPConnectionError(
                        f"MCP server {self.name!r} crashed or dropped the connection during "
                        f"{tool}{status} ({_describe(exc)}); the call may have run on the "
                        f"server, so it was not sent again: {tool} is not marked read-only "
                        "or idempotent (readOnlyHint/idempotentHint). Check its effect "
                        "before calling it again."
                    ) from exc
                attempt += 1
                if attempt > self.config.retries:
                    raise MCPConnectionError(
                        f"MCP server {self.name!r} crashed or dropped the connection during "
                        f"{tool}{status} ({_describe(exc)}); tried {attempt} time(s)"
                    ) from exc
                logger.info(
                    "MCP server %r dropped (%s); reconnecting to call %s again (it is %s)",
                    self.name,
                    _describe(exc),
                    tool,
                    "read-only" if spec.read_only else "idempotent",
                )
                continue
            return self._result(tool, result)

    async def _call_once(self, session: _Session, tool: str, args: dict[str, Any]) -> Any:
        with anyio.move_on_after(self.config.timeout_s):
            return await session.client.call_tool(tool, args)
        # Only this scope's timeout gets here; the caller's cancellation propagates. The
        # session stays open: the SDK drops the late answer.
        raise MCPToolError(
            f"{self.name}.{tool} did not answer within {self.config.timeout_s:g}s (timeout_s)"
        )

    def _result(self, tool: str, result: Any) -> Any:
        texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
        if result.is_error:
            raise MCPToolError(
                f"{self.name}.{tool} reported an error: {' '.join(texts) or 'no details'}"
            )
        if result.structured_content is not None:
            structured = result.structured_content
            size = len(json.dumps(structured, default=str))
            if size <= self.config.max_inline_chars:
                return structured
            return self._artifacts.keep("application/json", json.dumps(structured, default=str))
        parts = [
            content_value(content, self._artifacts, self.config.max_inline_chars)
            for content in result.content
        ]
        if len(parts) == 1:
            return parts[0]
        return parts


def _is_protocol_error(exc: BaseException) -> bool:
    """An error the server answered (bad request, unknown tool), not a broken connection."""
    from mcp.shared.exceptions import MCPError as SDKError
    from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    return isinstance(exc, SDKError) and exc.error.code not in (CONNECTION_CLOSED, REQUEST_TIMEOUT)


def _bound(connector: MCPConnector, tool: str) -> Any:
    async def call(arguments: Mapping[str, Any]) -> Any:
        return await connector.call_tool(tool, arguments)

    return call
