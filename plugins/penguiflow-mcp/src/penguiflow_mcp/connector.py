"""`MCPConnector`: one MCP server's tools as namespaced tool specs, called over one session.

The session opens on first use and is reused; it is opened again after the connection drops
or when used from another event loop. Calls are bounded by `max_concurrency`, each by
`timeout_s`, and retried `retries` times after a dropped connection. `mcp` is imported only
when a connection is made, so installing this plugin does not slow `import penguiflow`.

The session (its owner task, transports, HTTP statuses) is `_session.Session`; `aclose()` (or
leaving `async with connector:`) ends its owner task and awaits it, so no task outlives the
connector.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import warnings
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from penguiflow.catalog import NodeSpec
from penguiflow.connectors import ToolResult, tool_result_schema
from penguiflow.current import current_context, current_flow
from penguiflow.errors import ConfigurationError, describe_exception
from penguiflow.observability import Observation, capture_content, clip_content, observe
from penguiflow.resources import AsyncResource
from penguiflow.tracecontext import TRACEPARENT, current_span

from ._elicitation import ElicitationCallback, Elicitations
from ._errors import MCPConnectionError, MCPError, MCPToolError
from ._features import (
    MCPCompletion,
    MCPPrompt,
    MCPPromptResult,
    MCPResource,
    MCPResourceTemplate,
    MCPResourceUpdate,
    MCPSubscription,
    UpdateCallback,
    prompt_from,
    prompt_result_from,
    resource_from,
    template_from,
)
from ._notifications import (
    ChangeListener,
    ProgressCallback,
    ProgressRelay,
    listen_supported,
    log_handler,
    notification_handler,
)
from ._results import ArtifactStore, MCPResourceContent, resource_content, tool_result
from ._roots import MCPRoot, RootsAnswer, quiet_roots_deprecation, to_roots
from ._schema import ArgumentChecker
from ._session import Session as _Session
from ._session import describe_failure as _describe
from ._stderr import server_logger
from ._sync import ToolSync
from ._tools import MCPTool
from ._tools import task_only_message as _task_only
from ._tools import tool_from_listing as _tool_from_listing
from .auth import MCPOAuth, TokenProvider, check_auth_options
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


class MCPConnector(AsyncResource):
    """The tools of one MCP server (a `penguiflow.connectors.Connector`).

    `await connector.aclose()` closes the session (idempotent); `async with connector:` closes
    it on the way out. A closed connector stays usable: the next call opens a new session."""

    def __init__(
        self,
        config: MCPServerConfig,
        *,
        oauth: MCPOAuth | None = None,
        token_provider: TokenProvider | None = None,
        on_progress: ProgressCallback | None = None,
        sampling: Any = None,
        elicitation: ElicitationCallback | None = None,
    ) -> None:
        check_auth_options(config, oauth=oauth, token_provider=token_provider)
        self.config = config
        self.name = config.name
        #: authorization for an HTTP server (see `penguiflow_mcp.auth`); keyword arguments,
        #: not config fields, since callables and token stores cannot live in a TOML file
        self._oauth = oauth
        self._token_provider = token_provider
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
        #: resources, prompts, progress, logging, list changes (see `_notification_options`)
        self._on_progress = on_progress
        self._listings: dict[str, list[Any]] = {}
        self._subscriptions: dict[str, list[MCPSubscription]] = {}
        self._tools_changed: list[Callable[[MCPConnector], Awaitable[None] | None]] = []
        #: client capabilities (see `_capability_options`): the LLM client answering
        #: `sampling/createMessage` (a `penguiflow.llm.JSONLLMClient`), elicitation, roots
        self._sampling = sampling
        self._elicitations = Elicitations(config.name, elicitation)
        self._roots: list[MCPRoot] | None = list(config.roots) if config.roots is not None else None

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

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Call `tool` with `arguments` (checked against its schema first); its result as a
        `ToolResult` (text, structured content, references, links), whatever it returned."""
        await self.list_tools()
        tools = self._tools or {}
        spec = tools.get(tool)
        if spec is None:
            raise MCPToolError(
                f"MCP server {self.name!r} has no tool {tool!r}; it has: {', '.join(sorted(tools))}"
            )
        if spec.task_support == "required":
            raise MCPToolError(_task_only(self.name, [tool]))
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
        attributes = {"connector": "mcp", "server": self.name, "tool": tool, "retried": 0}
        async with gate, observe("connector", "call", attributes=attributes) as unit:
            if unit.active and capture_content():
                unit.attributes["arguments"] = clip_content(args)
            # An elicitation during the call is attributed to it; what it leaves (the
            # planner's pause, a bad answer) is raised once the server has answered.
            with self._elicitations.tracking(tool) as elicited:
                result = await self._call_with_retries(tool, args, unit)
            await self._elicitations.settle(elicited)
            if unit.active and capture_content():
                unit.attributes["result"] = clip_content(result.text)
            return result

    # -- catalog -------------------------------------------------------------------------------

    async def tool_specs(self) -> list[NodeSpec]:
        """Every tool as a `NodeSpec` named `<server>.<tool>`, calling through this connector."""
        specs = []
        tools = await self.list_tools()
        task_only = [t.name for t in tools if t.task_support == "required"]
        if task_only:
            logger.info("left out of the catalog: %s", _task_only(self.name, task_only))
        for tool in tools:
            if tool.task_support == "required":
                continue
            extra: dict[str, Any] = {"mcp_server": self.name, "mcp_tool": tool.name}
            if tool.title:
                extra["title"] = tool.title
            spec = NodeSpec.from_schema(
                f"{self.name}.{tool.name}",
                desc=tool.description,
                input_schema=tool.input_schema,
                # What the call answers: a ToolResult's JSON, whose `structured` follows
                # the tool's own outputSchema when it declares one.
                output_schema=tool_result_schema(tool.output_schema),
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

    # -- resources, prompts, completions, list changes ------------------------------------------

    async def list_resources(self) -> list[MCPResource]:
        """The server's resources, every page of them (kept until the server says the list
        changed, or the session is reopened)."""
        resources: list[MCPResource] = await self._paged(
            "resources",
            "list its resources",
            "resources",
            resource_from,
            lambda c, cursor: c.list_resources(cursor=cursor, cache_mode="bypass"),
        )
        return resources

    async def list_resource_templates(self) -> list[MCPResourceTemplate]:
        """The server's resource templates, every page of them (`template.expand(**values)`
        gives a URI to `read_resource`)."""
        templates: list[MCPResourceTemplate] = await self._paged(
            "templates",
            "list its resource templates",
            "resource_templates",
            template_from,
            lambda c, cursor: c.list_resource_templates(cursor=cursor, cache_mode="bypass"),
        )
        return templates

    async def list_prompts(self) -> list[MCPPrompt]:
        """The server's prompts, every page of them (kept until the server says the list
        changed, or the session is reopened)."""
        prompts: list[MCPPrompt] = await self._paged(
            "prompts",
            "list its prompts",
            "prompts",
            prompt_from,
            lambda c, cursor: c.list_prompts(cursor=cursor, cache_mode="bypass"),
        )
        return prompts

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None = None
    ) -> MCPPromptResult:
        """The prompt `name` rendered with `arguments`, as penguiflow `LLMMessage`s. Missing
        required or unknown arguments raise `MCPPromptError` before anything is sent; an
        unknown prompt raises `MCPError` listing the server's prompts."""
        prompts = {prompt.name: prompt for prompt in await self.list_prompts()}
        prompt = prompts.get(name)
        if prompt is None:
            raise MCPError(
                f"MCP server {self.name!r} has no prompt {name!r}; it has: "
                f"{', '.join(sorted(prompts)) or 'none'}"
            )
        args = {key: str(value) for key, value in (arguments or {}).items()}
        prompt.check(self.name, args)
        got = await self._request(f"render the prompt {name!r}", lambda c: c.get_prompt(name, args))
        return prompt_result_from(name, got)

    async def complete(
        self,
        argument: str,
        value: str = "",
        *,
        prompt: str | None = None,
        template: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> MCPCompletion:
        """Values the server suggests for `argument` of a `prompt` (its name) or a resource
        `template` (its URI template), given what was typed so far (`value`) and the other
        arguments already chosen (`context`). Pass exactly one of prompt= and template=."""
        from mcp_types import PromptReference, ResourceTemplateReference

        if (prompt is None) == (template is None):
            raise ConfigurationError(
                "complete() needs exactly one of prompt= (a prompt name) or template= (a "
                "resource URI template)"
            )
        ref: Any = (
            PromptReference(type="ref/prompt", name=prompt)
            if prompt is not None
            else ResourceTemplateReference(type="ref/resource", uri=str(template))
        )
        what = f"complete {argument!r} of {'prompt ' + repr(prompt) if prompt else template!r}"
        result = await self._request(
            what,
            lambda c: c.complete(
                ref, {"name": argument, "value": value}, dict(context) if context else None
            ),
        )
        found = result.completion
        return MCPCompletion(
            values=tuple(found.values), total=found.total, has_more=bool(found.has_more)
        )

    async def subscribe_resource(
        self, uri: str, *, on_update: UpdateCallback | None = None
    ) -> MCPSubscription:
        """Subscribe to updates of the resource at `uri`: an `MCPSubscription` to iterate
        (`async for update in sub`), and/or `on_update(update)` called for each update (in
        the session's notification handler: keep it short, and do not await the server from
        it). `sub.aclose()` or `unsubscribe_resource(uri)` ends it."""
        subscription = MCPSubscription(
            self.name, uri, unsubscribe=self._drop_subscription, on_update=on_update
        )
        first = uri not in self._subscriptions
        self._subscriptions.setdefault(uri, []).append(subscription)
        if first:
            try:
                session = await self._connected()
                if not self._listening(session):
                    await self._request(
                        f"subscribe to {uri!r}",
                        lambda c: _quiet(c.session.subscribe_resource, uri),
                    )
                elif session.changes is not None:
                    # 2026-07-28 has no resources/subscribe: the listen stream's filter
                    # names the URIs, and is fixed when the stream opens.
                    await session.changes.relisten_and_wait()
            except BaseException:
                self._subscriptions.pop(uri, None)
                raise
        return subscription

    async def unsubscribe_resource(self, uri: str) -> None:
        """End every subscription to `uri` (idempotent)."""
        for subscription in list(self._subscriptions.get(uri, ())):
            await subscription.aclose()

    def on_tools_changed(
        self, callback: Callable[[MCPConnector], Awaitable[None] | None]
    ) -> Callable[[], None]:
        """Call `callback(connector)` when the server says its tool list changed (after the
        cached listing is dropped: the next `list_tools()`/`tool_specs()` lists again).
        It runs in the session's notification handler: record the change there and list
        later, since awaiting the server from it would wait on itself. Returns a function
        that removes the callback."""
        self._tools_changed.append(callback)

        def remove() -> None:
            if callback in self._tools_changed:
                self._tools_changed.remove(callback)

        return remove

    async def sync_tools(self, planner: Any) -> ToolSync:
        """Keep `planner`'s `<server>.*` tools equal to the server's: they are replaced now,
        and again each time the server says its tool list changed (running planner runs
        see the new tools from their next step). Returns the `ToolSync`; `aclose()` on it
        (or `async with`) stops following. `planner` needs `replace_tools(prefix, specs)`
        (`penguiflow_planner.ReactPlanner`)."""
        sync = ToolSync(self, planner)
        try:
            await sync.start()
        except BaseException:
            await sync.aclose()
            raise
        return sync

    async def _paged(
        self,
        key: str,
        what: str,
        field: str,
        convert: Callable[[Any], Any],
        fetch: Callable[[Any, str | None], Awaitable[Any]],
    ) -> Any:
        cached = self._listings.get(key)
        if cached is not None:
            return list(cached)
        items: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await self._request(what, functools.partial(_page, fetch, cursor))
            items += [convert(item) for item in getattr(page, field)]
            cursor = page.next_cursor
            if cursor is None:
                break
            if cursor in seen:
                raise MCPError(
                    f"MCP server {self.name!r} sent the cursor {cursor!r} twice while asked "
                    f"to {what}; its paging is broken"
                )
            seen.add(cursor)
        self._listings[key] = items
        return list(items)

    def _drop_listings(self, *keys: str) -> None:
        for key in keys:
            self._listings.pop(key, None)

    async def _tools_list_changed(self, _params: Any) -> None:
        self._tools = None
        self._checkers = {}
        for callback in list(self._tools_changed):
            try:
                outcome = callback(self)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                logger.warning(
                    "MCP server %r: an on_tools_changed callback failed: %s",
                    self.name,
                    describe_exception(exc),
                )

    async def _resource_updated(self, params: Any) -> None:
        uri = str(params.uri)
        for subscription in list(self._subscriptions.get(uri, ())):
            await subscription.deliver(MCPResourceUpdate(self.name, uri))

    async def _drop_subscription(self, subscription: MCPSubscription) -> None:
        subscriptions = self._subscriptions.get(subscription.uri, [])
        if subscription in subscriptions:
            subscriptions.remove(subscription)
        if subscriptions or subscription.uri not in self._subscriptions:
            return
        del self._subscriptions[subscription.uri]
        session = self._session
        if session is None or not session.alive:
            return  # nothing to tell: the next session will not subscribe to it
        if self._listening(session):
            if session.changes is not None:
                session.changes.relisten()
            return
        try:
            await self._request(
                f"unsubscribe from {subscription.uri!r}",
                lambda c: _quiet(c.session.unsubscribe_resource, subscription.uri),
            )
        except MCPError as exc:
            logger.info("%s (the subscription is dropped here all the same)", exc)

    @staticmethod
    def _listening(session: _Session) -> bool:
        """Whether `session` hears of changes and updates on a listen stream (2026-07-28)."""
        return session.changes is not None and listen_supported(session.client)

    async def _session_opened(self, session: _Session, *, reopened: bool) -> None:
        """A new session: set the server's log level and subscribe again to the resources
        subscribed to before. Failures are logged: the session works without them. After a
        reconnect the server may be another one (restarted, upgraded): listings are dropped
        and `on_tools_changed` listeners told, as if it had announced a change."""
        if reopened:
            self._listings.clear()
            await self._tools_list_changed(None)
        client = session.client
        try:
            if self.config.log_level is not None and client.server_capabilities.logging:
                with anyio.move_on_after(self.config.timeout_s):
                    await _quiet(client.session.set_logging_level, self.config.log_level)
            # A listen stream (2026-07-28) carries the subscribed URIs in its filter.
            for uri in [] if self._listening(session) else list(self._subscriptions):
                with anyio.move_on_after(self.config.timeout_s):
                    await _quiet(client.session.subscribe_resource, uri)
        except Exception as exc:
            logger.warning(
                "MCP server %r: setting its log level or subscribing again failed: %s",
                self.name,
                describe_exception(exc),
            )

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

    # -- client capabilities -------------------------------------------------------------------

    @property
    def roots(self) -> list[MCPRoot] | None:
        """The roots answered on `roots/list` (None: the capability is not offered)."""
        return list(self._roots) if self._roots is not None else None

    async def set_roots(self, roots: Any) -> None:
        """Replace the roots (paths, `file://` URIs, `MCPRoot`s or `{uri, name}` mappings)
        and tell the server (`notifications/roots/list_changed`), which asks for them again.
        A session opened without the roots capability (no `roots` configured) is closed,
        so the next call opens one that offers it."""
        new = to_roots(roots)
        offered = self._roots is not None
        if self._roots is None:
            self._roots = new
        else:
            self._roots[:] = new  # the open session's RootsAnswer holds this very list
        session = self._session
        if session is None or session.loop is not asyncio.get_running_loop() or not session.alive:
            return
        if not offered:
            await self.aclose()
            self._tools = None  # the server lists tools by the client's capabilities
            return
        try:
            with quiet_roots_deprecation():
                await session.client.send_roots_list_changed()
        except Exception as exc:
            # The new roots are kept and answered on the next roots/list; a dropped session
            # is reopened on next use and the server asks for them then.
            logger.warning(
                "MCP server %r: could not send roots/list_changed: %s",
                self.name,
                describe_exception(exc),
            )

    # -- internals -----------------------------------------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        """The SDK `Client` keyword arguments of a new session: handlers of the server's
        notifications, and the client capabilities this connector answers."""
        options: dict[str, Any] = {}
        options.update(self._notification_options())
        options.update(self._capability_options())
        return options

    def _notification_options(self) -> dict[str, Any]:
        """Handlers of server notifications (logging, progress, list changes, updates)."""
        return {
            "logging_callback": log_handler(server_logger("penguiflow.mcp", self.name), self.name),
            "message_handler": notification_handler(self.name, self._change_routes()),
            # 2026-07-28 servers take the level on each request; older ones by
            # logging/setLevel, sent in `_session_opened`
            "log_level": self.config.log_level,
        }

    def _change_routes(self) -> dict[str, Callable[[Any], Awaitable[None] | None]]:
        """Where list changes and resource updates go, whether they come as notifications
        (servers before 2026-07-28) or on a `subscriptions/listen` stream (`ChangeListener`)."""
        routes: dict[str, Callable[[Any], Awaitable[None] | None]] = {
            "notifications/tools/list_changed": self._tools_list_changed,
            "notifications/resources/list_changed": lambda _: self._drop_listings(
                "resources", "templates"
            ),
            "notifications/prompts/list_changed": lambda _: self._drop_listings("prompts"),
            "notifications/resources/updated": self._resource_updated,
        }
        return routes

    def _capability_options(self) -> dict[str, Any]:
        """Callbacks of the client capabilities (sampling, elicitation, roots). The SDK
        advertises a capability only when its callback is given: sampling only with an LLM
        client, roots only when configured; elicitation always, since without a callback a
        planner can still pause for a human."""
        options: dict[str, Any] = {"elicitation_callback": self._elicitations}
        if self._sampling is not None:
            from ._sampling import SamplingAnswer

            options["sampling_callback"] = SamplingAnswer(self._sampling, self.name)
        if self._roots is not None:
            options["list_roots_callback"] = RootsAnswer(self._roots)
        return options

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
            fresh = _Session(
                self.config,
                oauth=self._oauth,
                token_provider=self._token_provider,
                client_options=self._client_options(),
                changes=ChangeListener(
                    self.name, self._change_routes(), lambda: list(self._subscriptions)
                ),
            )
            await fresh.open()
            await self._session_opened(fresh, reopened=session is not None)
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

    async def _call_with_retries(
        self, tool: str, args: dict[str, Any], unit: Observation | None = None
    ) -> ToolResult:
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
                    _count_retry(unit)
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
                _count_retry(unit)
                continue
            return self._result(tool, result)

    async def _call_once(self, session: _Session, tool: str, args: dict[str, Any]) -> Any:
        # Every call carries a progress token; the relay reads the caller's context here.
        progress = ProgressRelay(
            self.name, tool, on_progress=self._on_progress, ctx=current_context()
        )
        try:
            # The caller's trace goes in the request's `_meta` (the MCP convention, so a stdio
            # server sees it too); over HTTP it also becomes the `traceparent` header.
            span = current_span()
            meta: Any = {TRACEPARENT: span.traceparent} if span is not None else None
            with anyio.move_on_after(self.config.timeout_s):
                return await session.client.call_tool(
                    tool, args, progress_callback=progress, meta=meta
                )
        finally:
            await progress.finish()
        # Only this scope's timeout gets here; the caller's cancellation propagates. The
        # session stays open: the SDK drops the late answer.
        raise MCPToolError(
            f"{self.name}.{tool} did not answer within {self.config.timeout_s:g}s (timeout_s)"
        )

    def _result(self, tool: str, result: Any) -> ToolResult:
        if result.is_error:
            texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
            raise MCPToolError(
                f"{self.name}.{tool} reported an error: {' '.join(texts) or 'no details'}"
            )
        return tool_result(result, self._artifacts, self.config.max_inline_chars)


def _count_retry(unit: Observation | None) -> None:
    if unit is not None and unit.active:
        unit.attributes["retried"] = int(unit.attributes.get("retried", 0)) + 1


def _is_protocol_error(exc: BaseException) -> bool:
    """An error the server answered (bad request, unknown tool), not a broken connection."""
    from mcp.shared.exceptions import MCPError as SDKError
    from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    return isinstance(exc, SDKError) and exc.error.code not in (CONNECTION_CLOSED, REQUEST_TIMEOUT)


async def _page(
    fetch: Callable[[Any, str | None], Awaitable[Any]], cursor: str | None, client: Any
) -> Any:
    return await fetch(client, cursor)


def _quiet(method: Callable[..., Awaitable[Any]], *args: Any) -> Awaitable[Any]:
    """Call one of the SDK's deprecated methods (resources/subscribe, logging/setLevel:
    deprecated as of protocol 2026-07-28, still how 2025 servers work) without its warning."""
    from mcp.shared.exceptions import MCPDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        return method(*args)


def _bound(connector: MCPConnector, tool: str) -> Any:
    async def call(arguments: Mapping[str, Any]) -> ToolResult:
        return await connector.call_tool(tool, arguments)

    return call
