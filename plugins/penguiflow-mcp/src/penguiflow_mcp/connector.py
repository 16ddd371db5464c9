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
import base64
import json
import logging
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio

from penguiflow.catalog import NodeSpec, argument_errors
from penguiflow.errors import PenguiFlowError, UnknownNameError, describe_exception
from penguiflow.resources import AsyncResource

from .config import MCPServerConfig

__all__ = ["MCPConnectionError", "MCPConnector", "MCPError", "MCPTool", "MCPToolError"]

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
    """A tool as the server lists it (`name` is the server's own name for it)."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None


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
        if not handshake_done:
            raise MCPConnectionError(
                f"MCP server {self.config.name!r} did not complete the MCP handshake within "
                f"{self.config.connect_timeout_s:g}s; is {self._target()} an MCP server, and "
                "does it speak MCP on stdout (not logs)?"
            )
        reason = _describe(failure) if failure is not None else "it closed the connection"
        raise MCPConnectionError(
            f"MCP server {self.config.name!r} could not be started or reached at "
            f"{self._target()}: {reason}{self._status_hint()}"
        ) from failure

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
            self._ready.set()  # wakes open() whatever happened

    async def _enter_client(self, stack: AsyncExitStack) -> Any:
        from mcp import Client

        read_timeout = self.config.timeout_s + _SDK_TIMEOUT_MARGIN_S
        if self.config.command is not None:
            from mcp.client.stdio import StdioServerParameters

            target: Any = StdioServerParameters(
                command=self.config.command,
                args=list(self.config.args),
                env=self.config.resolved_env() or None,
                cwd=self.config.cwd,
            )
            return await stack.enter_async_context(
                Client(target, read_timeout_seconds=read_timeout)
            )
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async def record(response: Any) -> None:
            if response.status_code >= 400:
                self.http_status = response.status_code

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
        self._artifacts: dict[str, tuple[str, bytes | str]] = {}

    def __repr__(self) -> str:
        return f"MCPConnector({self.name!r}, {self.config.transport})"

    # -- the Connector protocol --------------------------------------------------------------

    async def list_tools(self) -> list[MCPTool]:
        """The server's tools (fetched once per connection)."""
        if self._tools is None:
            session = await self._connected()
            listing: Any = None
            try:
                with anyio.move_on_after(self.config.timeout_s):
                    listing = await session.client.list_tools()
            except Exception as exc:
                raise MCPConnectionError(
                    f"MCP server {self.name!r} failed to list its tools: {_describe(exc)}"
                ) from exc
            if listing is None:
                raise MCPConnectionError(
                    f"MCP server {self.name!r} did not list its tools within "
                    f"{self.config.timeout_s:g}s (timeout_s)"
                )
            self._tools = {
                tool.name: MCPTool(
                    name=tool.name,
                    description=tool.description or tool.title or tool.name,
                    input_schema=dict(tool.input_schema or {"type": "object"}),
                    output_schema=dict(tool.output_schema) if tool.output_schema else None,
                )
                for tool in listing.tools
            }
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
        errors = argument_errors(spec.input_schema, args)
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
            specs.append(
                NodeSpec.from_schema(
                    f"{self.name}.{tool.name}",
                    desc=tool.description,
                    input_schema=tool.input_schema,
                    output_schema=tool.output_schema,
                    call=_bound(self, tool.name),
                    side_effects="external",
                    tags=("mcp", self.name),
                    extra={"mcp_server": self.name, "mcp_tool": tool.name},
                )
            )
        return specs

    def artifact(self, ref: str) -> tuple[str, bytes | str]:
        """`(mime_type, content)` of a result kept out of the prompt (`ref` from the result)."""
        try:
            return self._artifacts[ref.rsplit("/", 1)[-1]]
        except KeyError:
            raise UnknownNameError(f"no artifact {ref!r} on MCP connector {self.name!r}") from None

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

    async def _call_with_retries(self, tool: str, args: dict[str, Any]) -> Any:
        attempt = 0
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
            try:
                result = await self._call_once(session, tool, args)
            except MCPToolError:
                raise
            except Exception as exc:
                if _is_protocol_error(exc):
                    raise MCPToolError(f"{self.name}.{tool} failed: {_describe(exc)}") from exc
                await session.close()
                attempt += 1
                if attempt > self.config.retries:
                    raise MCPConnectionError(
                        f"MCP server {self.name!r} crashed or dropped the connection during "
                        f"{tool} ({_describe(exc)}); tried {attempt} time(s)"
                    ) from exc
                logger.info("MCP server %r dropped (%s); reconnecting", self.name, _describe(exc))
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
            return self._keep("application/json", json.dumps(structured, default=str))
        parts: list[Any] = []
        for content in result.content:
            kind = getattr(content, "type", None)
            if kind == "text":
                text = content.text
                parts.append(
                    text
                    if len(text) <= self.config.max_inline_chars
                    else self._keep("text/plain", text)
                )
            elif kind in ("image", "audio"):
                parts.append(self._keep(content.mime_type, base64.b64decode(content.data)))
            else:
                parts.append(self._keep("application/json", content.model_dump_json()))
        if len(parts) == 1:
            return parts[0]
        return parts

    def _keep(self, mime_type: str, data: bytes | str) -> dict[str, Any]:
        ref = uuid.uuid4().hex
        self._artifacts[ref] = (mime_type, data)
        reference: dict[str, Any] = {
            "type": "artifact",
            "ref": f"mcp://{self.name}/{ref}",
            "mime_type": mime_type,
            "size": len(data),
        }
        if isinstance(data, str):
            reference["preview"] = data[:200]
        return reference


def _is_protocol_error(exc: BaseException) -> bool:
    """An error the server answered (bad request, unknown tool), not a broken connection."""
    from mcp.shared.exceptions import MCPError as SDKError
    from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    return isinstance(exc, SDKError) and exc.error.code not in (CONNECTION_CLOSED, REQUEST_TIMEOUT)


def _bound(connector: MCPConnector, tool: str) -> Any:
    async def call(arguments: Mapping[str, Any]) -> Any:
        return await connector.call_tool(tool, arguments)

    return call
