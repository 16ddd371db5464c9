"""`UTCPConnector`: the tools of one UTCP manual as namespaced tool specs.

A manual is discovered from its call template (for HTTP, the URL that serves the manual);
its tools are named `<manual>.<tool>` and called through the UTCP client with the call
templates the manual declares. `utcp` is imported when the connector first connects.

The manual is not trusted to choose where calls go or what they carry (see `_policy`): its
tools may call only the manual's own origin and the hosts in `allowed_hosts`, checked when
the manual is registered and again before each call, and they get only the `${VARIABLE}`s
listed in `allowed_variables`. Variables in the connector's own call template (the user's
configuration) are filled as UTCP always does.

Concurrency follows anyio (on the asyncio backend): fetching the manual and each call are
bounded by cancel scopes, a client whose registration is cancelled or fails is closed before
the error goes on, and `aclose()` (or leaving `async with connector:`) closes the client.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from penguiflow.catalog import NodeSpec, argument_errors
from penguiflow.connectors import ToolResult, tool_result_schema
from penguiflow.current import current_flow
from penguiflow.errors import ConfigurationError, PenguiFlowError, describe_exception
from penguiflow.observability import capture_content, clip_content, observe
from penguiflow.resources import AsyncResource
from penguiflow.tracecontext import TRACEPARENT, current_span

from ._policy import (
    VARIABLE_NAME,
    HostRule,
    Origin,
    env_variable,
    origin_of,
    parse_allowed_host,
    placeholder_in_authority,
    resolve_url,
)
from ._results import tool_result

__all__ = [
    "UTCPConnectionError",
    "UTCPConnector",
    "UTCPError",
    "UTCPPolicyError",
    "UTCPTool",
    "UTCPToolError",
]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class UTCPError(PenguiFlowError, RuntimeError):
    """Something went wrong with a UTCP manual; the message names it."""


class UTCPConnectionError(UTCPError, ConnectionError):
    """The manual could not be fetched or a tool's endpoint could not be reached."""


class UTCPToolError(UTCPError):
    """A tool call failed, or its arguments do not match its schema."""


class UTCPPolicyError(UTCPToolError):
    """A manual's tool would call a host, or read a variable, that the connector's
    configuration does not allow (`allowed_hosts`, `allowed_variables`); nothing was sent."""


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

    The manual's tools may call only the manual's own origin (scheme, host and port of its
    URL); `allowed_hosts` names others they may call: `"host"` (any port), `"host:port"`,
    `"*.example.com"` (its subdomains) or `"https://host[:port]"` (that origin). A tool's
    `${NAME}` placeholders are filled only for names in `allowed_variables`, from the
    environment variable `<manual>_<NAME>` (UTCP's naming, with the manual name's `_`
    doubled). Anything else raises `UTCPPolicyError` naming the tool, the target or
    variable, and the option to change, and nothing is sent.

    `await connector.aclose()` closes the UTCP client (idempotent); `async with connector:`
    closes it on the way out. A closed connector stays usable: it connects again when used.
    A connector the plugin's hook registered is also closed when the last running flow that
    used it stops (see `release_flow`)."""

    def __init__(
        self,
        name: str,
        call_template: Mapping[str, Any],
        *,
        timeout_s: float = 30.0,
        allowed_hosts: Iterable[str] = (),
        allowed_variables: Iterable[str] = (),
    ) -> None:
        if not _NAME.match(name):
            raise ConfigurationError(
                f"manual name {name!r} must start with a letter and use letters, digits or '_' "
                "(it prefixes tool names: name.tool)"
            )
        self.name = name
        self.call_template = {**dict(call_template), "name": name}
        self.timeout_s = timeout_s
        self.allowed_hosts = _names(allowed_hosts, "allowed_hosts", "hosts")
        self._host_rules: tuple[HostRule, ...] = tuple(
            parse_allowed_host(entry) for entry in self.allowed_hosts
        )
        self.allowed_variables = _names(allowed_variables, "allowed_variables", "names")
        for variable in self.allowed_variables:
            if not VARIABLE_NAME.match(variable):
                raise ConfigurationError(
                    f"allowed_variables entry {variable!r} is not a variable name: use the name "
                    "the manual writes as ${NAME} (letters, digits and '_')"
                )
        #: where the manual came from; its tools may call it
        self._origin: Origin | None = None
        #: each tool's call template, as the manual declared it
        self._templates: dict[str, Any] = {}
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tools: dict[str, UTCPTool] | None = None
        self._lock: anyio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        #: the running flows this connector was used from (see `release_flow`)
        self._flows: weakref.WeakSet[Any] = weakref.WeakSet()

    @classmethod
    def http(
        cls,
        name: str,
        url: str,
        *,
        http_method: str = "GET",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        allowed_hosts: Iterable[str] = (),
        allowed_variables: Iterable[str] = (),
    ) -> UTCPConnector:
        """A manual served over HTTP at `url` (the UTCP `http` call template). `${VAR}` in
        `headers` is this configuration's own and is filled from `<name>_VAR` as usual."""
        template: dict[str, Any] = {
            "call_template_type": "http",
            "url": url,
            "http_method": http_method,
        }
        if headers:
            template["headers"] = dict(headers)
        return cls(
            name,
            template,
            timeout_s=timeout_s,
            allowed_hosts=allowed_hosts,
            allowed_variables=allowed_variables,
        )

    def __repr__(self) -> str:
        return f"UTCPConnector({self.name!r})"

    async def _connected(self) -> Any:
        flow = current_flow()
        if flow is not None:
            self._flows.add(flow)
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
            _send_trace_context(client)
            try:
                result = await self._register(client)
                origin = origin_of(str(getattr(result.manual_call_template, "url", "") or ""))
                self._check_declared_targets(result.manual.tools, origin)
            except BaseException:
                # Failed, refused, timed out or cancelled: the client must not outlive the
                # attempt.
                with anyio.CancelScope(shield=True):
                    await client.close()
                raise
            self._client, self._loop, self._tools = client, loop, None
            self._origin = origin
            self._templates = {
                tool.name.split(".", 1)[-1]: tool.tool_call_template for tool in result.manual.tools
            }
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

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Call `tool` with `arguments` (checked against its schema and the connector's
        policy first); its answer as a `ToolResult`: text as `text`, JSON as `structured`.
        Observed as one `connector.call` event; an HTTP request it makes carries its span
        as `traceparent`."""
        attributes = {"connector": "utcp", "server": self.name, "tool": tool, "retried": 0}
        async with observe("connector", "call", attributes=attributes) as unit:
            if unit.active and capture_content():
                unit.attributes["arguments"] = clip_content(dict(arguments))
            result = await self._call_tool(tool, arguments)
            if unit.active and capture_content():
                unit.attributes["result"] = clip_content(result.text or result.structured)
            return result

    async def _call_tool(self, tool: str, arguments: Mapping[str, Any]) -> ToolResult:
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
        self._check_call(client, tool, args)
        answered = False
        try:
            with anyio.move_on_after(self.timeout_s):
                value = await client.call_tool(f"{self.name}.{tool}", args)
                answered = True
        except TimeoutError as exc:  # the client's own (an OSError too): not unreachable
            raise UTCPToolError(f"{self.name}.{tool} timed out: {describe_exception(exc)}") from exc
        except OSError as exc:
            raise UTCPConnectionError(
                f"{self.name}.{tool}: endpoint unreachable ({describe_exception(exc)})"
            ) from exc
        except Exception as exc:
            raise UTCPToolError(f"{self.name}.{tool} failed: {_describe(exc)}") from exc
        if not answered:
            # Only this scope's timeout gets here; the caller's cancellation propagates.
            raise UTCPToolError(
                f"{self.name}.{tool} did not answer within {self.timeout_s:g}s (timeout_s)"
            )
        try:
            return tool_result(value)
        except ValueError as exc:
            raise UTCPToolError(f"{self.name}.{tool}: {describe_exception(exc)}") from exc

    # -- what a manual's tools may do ----------------------------------------------------------

    def _check_declared_targets(self, tools: Iterable[Any], origin: Origin | None) -> None:
        """Refuse a manual whose tools name, in their templates, hosts they may not call.
        Targets whose host is a placeholder are checked at each call instead."""
        refused: list[str] = []
        for tool in tools:
            for target in _targets(_serializer().to_dict(tool.tool_call_template)).values():
                if placeholder_in_authority(target):
                    continue
                if not self._may_call(origin_of(target), origin):
                    refused.append(f"{tool.name} -> {_short(target)}")
        if refused:
            raise UTCPPolicyError(
                f"UTCP manual {self.name!r} ({self._whence(origin)}) has tools that would call "
                f"hosts it is not allowed to: {'; '.join(refused)}. A manual's tools may call "
                "only the manual's own origin; if you trust those hosts, name them in "
                f"allowed_hosts= (now {list(self.allowed_hosts)!r})"
            )

    def _check_call(self, client: Any, tool: str, args: Mapping[str, Any]) -> None:
        """Before a call: the variables the tool's template asks for are allowed, and the
        hosts it will call, once its variables and arguments are filled in, are too."""
        template = _serializer().to_dict(self._templates[tool])
        substitutor = client.variable_substitutor
        # The same finder and filler UTCP's client uses for the call, on the same template.
        wanted = substitutor.find_required_variables(template, None)
        refused = sorted(set(wanted) - set(self.allowed_variables))
        if refused:
            raise UTCPPolicyError(
                f"{self.name}.{tool} asks for the variable(s) {self._variables(refused)}, which "
                "the manual's configuration does not give it; nothing was sent. A manual's "
                "tools get only the variables listed in allowed_variables= (now "
                f"{list(self.allowed_variables)!r}); add a name there if this tool may have it"
            )
        try:
            filled = substitutor.substitute(template, client.config, self.name)
        except Exception as exc:  # UTCP's UtcpVariableNotFound: an allowed one is not set
            raise UTCPToolError(
                f"{self.name}.{tool} needs the variable(s) {self._variables(sorted(set(wanted)))}"
                f", and one is not set ({_describe(exc)}); nothing was sent"
            ) from exc
        for field, target in _targets(filled).items():
            if field == "url":
                target = resolve_url(
                    target,
                    args,
                    header_fields=filled.get("header_fields") or (),
                    body_field=filled.get("body_field"),
                )
            origin = origin_of(target)
            if not self._may_call(origin, self._origin):
                where = str(origin) if origin is not None else "a URL with no valid host"
                raise UTCPPolicyError(
                    f"{self.name}.{tool} would call {where}, which is neither the manual's "
                    f"origin ({self._whence(self._origin)}) nor in allowed_hosts= (now "
                    f"{list(self.allowed_hosts)!r}); nothing was sent. Add the host to "
                    "allowed_hosts if this tool may call it"
                )

    def _may_call(self, target: Origin | None, origin: Origin | None) -> bool:
        if target is None:
            return False
        return target == origin or any(rule.matches(target) for rule in self._host_rules)

    def _variables(self, names: Iterable[str]) -> str:
        return ", ".join(
            f"{name!r} (environment variable {env_variable(self.name, name)})" for name in names
        )

    def _whence(self, origin: Origin | None) -> str:
        if origin is None:
            return "no origin: it was not fetched over HTTP"
        return f"origin {origin}"

    async def tool_specs(self) -> list[NodeSpec]:
        specs = []
        for tool in await self.list_tools():
            specs.append(
                NodeSpec.from_schema(
                    f"{self.name}.{tool.name}",
                    desc=tool.description,
                    input_schema=tool.input_schema,
                    # What the call answers: a ToolResult's JSON, whose `structured`
                    # follows the tool's declared outputs when the manual gives them.
                    output_schema=tool_result_schema(tool.output_schema),
                    call=_bound(self, tool.name),
                    tags=("utcp", self.name, *tool.tags),
                    extra={"utcp_manual": self.name, "utcp_tool": tool.name},
                )
            )
        return specs

    def release_flow(self, flow: Any) -> bool:
        """`flow` stopped: whether the client should be closed now, that is whether `flow`
        used this connector and no other running flow still does. A client only code outside
        any flow used is left open: its owner closes it (`aclose`, `async with`)."""
        if flow not in self._flows:
            return False
        self._flows.discard(flow)
        return not self._flows

    async def aclose(self) -> None:
        """Close the UTCP client (idempotent)."""
        client, loop = self._client, self._loop
        self._client, self._loop, self._tools = None, None, None
        # A client made on another event loop cannot be closed from this one (its loop has
        # ended, or owns it); it is dropped.
        if client is not None and loop is asyncio.get_running_loop():
            await client.close()


def _names(values: Iterable[str], option: str, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        # A lone string would be read as a list of one-character entries.
        raise ConfigurationError(f"{option} must be a list of {what}, not one string: [{values!r}]")
    return tuple(values)


def _targets(template: Mapping[str, Any]) -> dict[str, str]:
    """The URLs a tool's call template (as a dict) sends requests to: its own, and an OAuth2
    token URL (the client POSTs its credentials there)."""
    auth = template.get("auth")
    targets = {
        "url": template.get("url"),
        "auth.token_url": auth.get("token_url") if isinstance(auth, Mapping) else None,
    }
    return {field: t for field, t in targets.items() if isinstance(t, str)}


def _short(text: str) -> str:
    """A manual's text in a message: quoted, and not longer than a line."""
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _describe(exc: BaseException) -> str:
    """`Type: message`, safe with exceptions whose `__str__` raises or is empty."""
    text, kind = describe_exception(exc), type(exc).__name__
    return text if text.startswith(kind) else f"{kind}: {text}"


def _serializer() -> Any:
    from utcp.data.call_template import CallTemplateSerializer  # type: ignore[import-untyped]

    return CallTemplateSerializer()


def _send_trace_context(client: Any) -> None:
    """Make every HTTP-family call of `client` carry the caller's span as `traceparent`.

    UTCP has no request hook; its client builds a fresh copy of a tool's call template for
    each call (`_substitute_call_template_variables`, where `${VAR}`s are filled), in the
    caller's task. The header is added to that copy, so the stored template never changes
    and concurrent calls each send their own span. A UTCP release without that method is
    left as it is: calls still work, without the header."""
    substitute = getattr(client, "_substitute_call_template_variables", None)
    if not callable(substitute):
        return

    def with_trace(template: Any, namespace: str | None = None) -> Any:
        filled = substitute(template, namespace)
        span = current_span()
        headers = getattr(filled, "headers", None)
        if (
            span is not None
            and (headers is None or isinstance(headers, dict))
            and not any(key.lower() == TRACEPARENT for key in headers or {})
        ):
            filled.headers = {**(headers or {}), TRACEPARENT: span.traceparent}
        return filled

    client._substitute_call_template_variables = with_trace


def _template(data: Mapping[str, Any]) -> Any:
    return _serializer().validate_dict(dict(data))


def _schema(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        dumped: dict[str, Any] = value.model_dump(exclude_none=True, by_alias=True)
        return dumped
    return dict(value)


def _bound(connector: UTCPConnector, tool: str) -> Any:
    async def call(arguments: Mapping[str, Any]) -> ToolResult:
        return await connector.call_tool(tool, arguments)

    return call
