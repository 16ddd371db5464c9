"""`UTCPConnector`: the tools of one UTCP manual as namespaced tool specs.

A manual is discovered from its call template (for HTTP, the URL that serves the manual);
its tools are named `<manual>.<tool>` and called through the UTCP client with the call
templates the manual declares. `utcp` is imported when the connector first connects.

Concurrency follows anyio (on the asyncio backend): fetching the manual and each call are
bounded by cancel scopes, a client whose registration is cancelled or fails is closed before
the error goes on, and `aclose()` (or leaving `async with connector:`) closes the client.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from penguiflow.catalog import NodeSpec, argument_errors
from penguiflow.errors import ConfigurationError, PenguiFlowError, describe_exception
from penguiflow.resources import AsyncResource

__all__ = ["UTCPConnectionError", "UTCPConnector", "UTCPError", "UTCPTool", "UTCPToolError"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class UTCPError(PenguiFlowError, RuntimeError):
    """Something went wrong with a UTCP manual; the message names it."""


class UTCPConnectionError(UTCPError, ConnectionError):
    """The manual could not be fetched or a tool's endpoint could not be reached."""


class UTCPToolError(UTCPError):
    """A tool call failed, or its arguments do not match its schema."""


@dataclass(frozen=True, slots=True)
class UTCPTool:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    tags: tuple[str, ...]


class UTCPConnector(AsyncResource):
    """One UTCP manual. `call_template` is the manual's UTCP call template; for a manual
    served over HTTP, `UTCPConnector.http(name, url)` builds it.

    `await connector.aclose()` closes the UTCP client (idempotent); `async with connector:`
    closes it on the way out. A closed connector stays usable: it connects again when used."""

    def __init__(
        self, name: str, call_template: Mapping[str, Any], *, timeout_s: float = 30.0
    ) -> None:
        if not _NAME.match(name):
            raise ConfigurationError(
                f"manual name {name!r} must start with a letter and use letters, digits or '_' "
                "(it prefixes tool names: name.tool)"
            )
        self.name = name
        self.call_template = {**dict(call_template), "name": name}
        self.timeout_s = timeout_s
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tools: dict[str, UTCPTool] | None = None
        self._lock: anyio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def http(
        cls,
        name: str,
        url: str,
        *,
        http_method: str = "GET",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> UTCPConnector:
        """A manual served over HTTP at `url` (the UTCP `http` call template)."""
        template: dict[str, Any] = {
            "call_template_type": "http",
            "url": url,
            "http_method": http_method,
        }
        if headers:
            template["headers"] = dict(headers)
        return cls(name, template, timeout_s=timeout_s)

    def __repr__(self) -> str:
        return f"UTCPConnector({self.name!r})"

    async def _connected(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        if self._lock is None or self._lock_loop is not loop:
            # One lock per loop, made before anyone waits, so concurrent first calls share it.
            self._lock, self._lock_loop = anyio.Lock(), loop
        async with self._lock:
            if self._client is not None and self._loop is loop:
                return self._client
            from utcp.utcp_client import UtcpClient  # type: ignore[import-untyped]

            client = await UtcpClient.create(config={"manual_call_templates": []})
            try:
                result = await self._register(client)
            except BaseException:
                # Failed, timed out or cancelled: the client must not outlive the attempt.
                with anyio.CancelScope(shield=True):
                    await client.close()
                raise
            self._client, self._loop, self._tools = client, loop, None
            self._tools = {
                tool.name.split(".", 1)[-1]: UTCPTool(
                    name=tool.name.split(".", 1)[-1],
                    description=tool.description or tool.name,
                    input_schema=_schema(tool.inputs) or {"type": "object"},
                    output_schema=_schema(tool.outputs),
                    tags=tuple(tool.tags or ()),
                )
                for tool in result.manual.tools
            }
            return client

    async def _register(self, client: Any) -> Any:
        where = self.call_template.get("url", self.call_template)
        result: Any = None
        try:
            with anyio.move_on_after(self.timeout_s):
                result = await client.register_manual(_template(self.call_template))
        except Exception as exc:
            raise UTCPConnectionError(
                f"UTCP manual {self.name!r} could not be fetched from {where}: {_describe(exc)}"
            ) from exc
        if result is None:
            raise UTCPConnectionError(
                f"UTCP manual {self.name!r} could not be fetched from {where}: no answer within "
                f"{self.timeout_s:g}s (timeout_s)"
            )
        if not getattr(result, "success", True):
            errors = "; ".join(getattr(result, "errors", []) or ["no details"])
            raise UTCPConnectionError(
                f"UTCP manual {self.name!r} could not be registered from {where}: {errors}"
            )
        return result

    async def list_tools(self) -> list[UTCPTool]:
        await self._connected()
        assert self._tools is not None
        return list(self._tools.values())

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> Any:
        client = await self._connected()
        assert self._tools is not None
        spec = self._tools.get(tool)
        if spec is None:
            raise UTCPToolError(
                f"UTCP manual {self.name!r} has no tool {tool!r}; it has: "
                f"{', '.join(sorted(self._tools))}"
            )
        args = dict(arguments)
        errors = argument_errors(spec.input_schema, args)
        if errors:
            raise UTCPToolError(
                f"arguments for {self.name}.{tool} do not match its schema (not sent): "
                f"{'; '.join(errors)}"
            )
        try:
            with anyio.move_on_after(self.timeout_s):
                return await client.call_tool(f"{self.name}.{tool}", args)
        except TimeoutError as exc:  # the client's own (an OSError too): not unreachable
            raise UTCPToolError(f"{self.name}.{tool} timed out: {describe_exception(exc)}") from exc
        except OSError as exc:
            raise UTCPConnectionError(
                f"{self.name}.{tool}: endpoint unreachable ({describe_exception(exc)})"
            ) from exc
        except Exception as exc:
            raise UTCPToolError(f"{self.name}.{tool} failed: {_describe(exc)}") from exc
        # Only this scope's timeout gets here; the caller's cancellation propagates.
        raise UTCPToolError(
            f"{self.name}.{tool} did not answer within {self.timeout_s:g}s (timeout_s)"
        )

    async def tool_specs(self) -> list[NodeSpec]:
        specs = []
        for tool in await self.list_tools():
            specs.append(
                NodeSpec.from_schema(
                    f"{self.name}.{tool.name}",
                    desc=tool.description,
                    input_schema=tool.input_schema,
                    output_schema=tool.output_schema,
                    call=_bound(self, tool.name),
                    tags=("utcp", self.name, *tool.tags),
                    extra={"utcp_manual": self.name, "utcp_tool": tool.name},
                )
            )
        return specs

    async def aclose(self) -> None:
        """Close the UTCP client (idempotent)."""
        client, loop = self._client, self._loop
        self._client, self._loop, self._tools = None, None, None
        # A client made on another event loop cannot be closed from this one (its loop has
        # ended, or owns it); it is dropped.
        if client is not None and loop is asyncio.get_running_loop():
            await client.close()


def _describe(exc: BaseException) -> str:
    """`Type: message`, safe with exceptions whose `__str__` raises or is empty."""
    text, kind = describe_exception(exc), type(exc).__name__
    return text if text.startswith(kind) else f"{kind}: {text}"


def _template(data: Mapping[str, Any]) -> Any:
    from utcp.data.call_template import CallTemplateSerializer  # type: ignore[import-untyped]

    return CallTemplateSerializer().validate_dict(dict(data))


def _schema(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        dumped: dict[str, Any] = value.model_dump(exclude_none=True, by_alias=True)
        return dumped
    return dict(value)


def _bound(connector: UTCPConnector, tool: str) -> Any:
    async def call(arguments: Mapping[str, Any]) -> Any:
        return await connector.call_tool(tool, arguments)

    return call
