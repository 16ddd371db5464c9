"""`MCPConnector`: one MCP server's tools as namespaced tool specs, called over one session.

The session opens on first use and is reused; it is opened again after the connection drops
or when used from another event loop. Calls are bounded by `max_concurrency`, each by
`timeout_s`, and retried `retries` times after a dropped connection. `mcp` is imported only
when a connection is made, so installing this plugin does not slow `import penguiflow`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from penguiflow.catalog import NodeSpec, argument_errors

from .config import MCPServerConfig

__all__ = ["MCPConnectionError", "MCPConnector", "MCPError", "MCPTool", "MCPToolError"]

logger = logging.getLogger("penguiflow.mcp")


class MCPError(RuntimeError):
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
    """Owns the MCP client in one task, as anyio requires; others only send requests."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self.client: Any = None
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: the last HTTP error status the server answered (the SDK's errors do not carry it)
        self.http_status: int | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and self._task is not None and not self._task.done()

    async def open(self) -> None:
        ready: asyncio.Future[None] = self.loop.create_future()
        self._task = self.loop.create_task(
            self._own(ready), name=f"penguiflow-mcp:{self.config.name}"
        )
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.config.connect_timeout_s)
        except TimeoutError:
            await self.close()
            raise MCPConnectionError(
                f"MCP server {self.config.name!r} did not complete the MCP handshake within "
                f"{self.config.connect_timeout_s:g}s; is {self._target()} an MCP server, and "
                "does it speak MCP on stdout (not logs)?"
            ) from None
        except Exception as exc:
            await self.close()
            raise MCPConnectionError(
                f"MCP server {self.config.name!r} could not be started or reached at "
                f"{self._target()}: {_describe(exc)}{self._status_hint()}"
            ) from exc

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

    async def _own(self, ready: asyncio.Future[None]) -> None:
        from mcp import Client

        try:
            if self.config.command is not None:
                from mcp.client.stdio import StdioServerParameters

                target: Any = StdioServerParameters(
                    command=self.config.command,
                    args=list(self.config.args),
                    env=self.config.resolved_env() or None,
                    cwd=self.config.cwd,
                )
                async with Client(target, read_timeout_seconds=self.config.timeout_s) as client:
                    await self._serve(client, ready)
            else:
                import httpx2
                from mcp.client.streamable_http import streamable_http_client

                async def record(response: Any) -> None:
                    if response.status_code >= 400:
                        self.http_status = response.status_code

                async with httpx2.AsyncClient(
                    headers=self.config.resolved_headers(),
                    timeout=httpx2.Timeout(
                        self.config.timeout_s, connect=self.config.connect_timeout_s
                    ),
                    event_hooks={"response": [record]},
                ) as http:
                    transport = streamable_http_client(str(self.config.url), http_client=http)
                    async with Client(
                        transport, read_timeout_seconds=self.config.timeout_s
                    ) as client:
                        await self._serve(client, ready)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(
                    exc if isinstance(exc, Exception) else MCPConnectionError(str(exc))
                )
            elif not isinstance(exc, asyncio.CancelledError):
                logger.warning(
                    "MCP server %r dropped the connection: %s", self.config.name, _describe(exc)
                )
        finally:
            self.client = None

    async def _serve(self, client: Any, ready: asyncio.Future[None]) -> None:
        self.client = client
        ready.set_result(None)
        await self._stop.wait()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except (TimeoutError, Exception):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)


def _describe(exc: BaseException) -> str:
    """The innermost useful message of an exception (anyio groups wrap the real cause)."""
    seen = exc
    while isinstance(seen, BaseExceptionGroup) and seen.exceptions:
        seen = seen.exceptions[0]
    return f"{type(seen).__name__}: {seen}" if str(seen) else type(seen).__name__


class MCPConnector:
    """The tools of one MCP server (a `penguiflow.connectors.Connector`)."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self.name = config.name
        self._session: _Session | None = None
        #: the loop `_opening` and `_gate` belong to (asyncio primitives are per loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()
        self._gate = asyncio.Semaphore(config.max_concurrency)
        self._tools: dict[str, MCPTool] | None = None
        self._artifacts: dict[str, tuple[str, bytes | str]] = {}

    def __repr__(self) -> str:
        return f"MCPConnector({self.name!r}, {self.config.transport})"

    # -- the Connector protocol --------------------------------------------------------------

    async def list_tools(self) -> list[MCPTool]:
        """The server's tools (fetched once per connection)."""
        if self._tools is None:
            session = await self._connected()
            try:
                listing = await session.client.list_tools()
            except Exception as exc:
                raise MCPConnectionError(
                    f"MCP server {self.name!r} failed to list its tools: {_describe(exc)}"
                ) from exc
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
            raise KeyError(f"no artifact {ref!r} on MCP connector {self.name!r}") from None

    async def aclose(self) -> None:
        if self._session is not None and self._session.loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None

    # -- internals -----------------------------------------------------------------------------

    def _for_this_loop(self) -> tuple[asyncio.Lock, asyncio.Semaphore]:
        """The opening lock and the concurrency gate of the running loop, made once per loop
        so that concurrent first calls share them."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._opening = asyncio.Lock()
            self._gate = asyncio.Semaphore(self.config.max_concurrency)
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
                result = await asyncio.wait_for(
                    session.client.call_tool(tool, args), self.config.timeout_s
                )
            except TimeoutError:
                raise MCPToolError(
                    f"{self.name}.{tool} did not answer within {self.config.timeout_s:g}s"
                ) from None
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
