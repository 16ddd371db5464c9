"""What an MCP server tells us unasked: log messages, progress of a tool call, list changes
and resource updates.

Log messages go to Python logging (the server's own logger, the one its stderr goes to);
progress goes to the caller's `on_progress` callback and to the running node or tool
(`penguiflow.current.current_context()`); list changes and updates go back to the connector,
which drops its cached listings and wakes subscribers. Nothing here may fail a call: a
forwarding error is logged and the call goes on.
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.abc

from penguiflow.errors import describe_exception

__all__ = [
    "MCP_LOG_LEVELS",
    "ChangeListener",
    "MCPLogLevel",
    "MCPProgress",
    "ProgressCallback",
    "ProgressRelay",
    "listen_supported",
    "log_handler",
    "notification_handler",
]

logger = logging.getLogger("penguiflow.mcp")

MCPLogLevel = Literal[
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"
]

#: MCP's levels (syslog's) onto Python's: "notice" has no Python level and is logged as INFO;
#: "alert" and "emergency" are above CRITICAL in syslog, so CRITICAL is the closest.
MCP_LOG_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class MCPProgress:
    """One progress notification of a tool call: `progress` so far, of `total` when the
    server knows it, with its optional `message`."""

    server: str
    tool: str
    progress: float
    total: float | None
    message: str | None

    @property
    def text(self) -> str:
        """`message` when the server sent one, else `progress/total` (or `progress`)."""
        if self.message:
            return self.message
        if self.total is not None:
            return f"{self.progress:g}/{self.total:g}"
        return f"{self.progress:g}"


#: `MCPConnector(on_progress=...)`: called with each progress notification; may be async
ProgressCallback = Callable[[MCPProgress], Awaitable[None] | None]

_streams = itertools.count(1)


def _takes_parent(ctx: Any) -> bool:
    """Whether `ctx.emit_chunk` is a node's (it streams a reply to a `parent` message)."""
    try:
        return "parent" in inspect.signature(ctx.emit_chunk).parameters
    except (TypeError, ValueError):
        return True


class ProgressRelay:
    """The `progress_callback` of one tool call.

    The running context is read when the relay is made, in the caller's task: the SDK calls
    the callback from its own reader task, where `current_context()` is not the caller's.
    For the planner's tool context each call gets its own stream
    (`mcp-progress:<server>.<tool>:<n>`) of `stream_chunk`s with `meta` channel "progress",
    progress, total and message, closed with `done=True` when progress reaches total or the
    call ends. A node's `ctx.emit_chunk` needs the message being answered, which a
    connector's tool function never sees, so nodes get no chunks (only `on_progress`)."""

    def __init__(
        self,
        server: str,
        tool: str,
        *,
        on_progress: ProgressCallback | None,
        ctx: Any | None,
    ) -> None:
        self.server = server
        self.tool = tool
        self.on_progress = on_progress
        self.ctx = ctx if ctx is not None and hasattr(ctx, "emit_chunk") else None
        if self.ctx is not None and _takes_parent(self.ctx):
            logger.debug(
                "progress of %s.%s is not streamed to the node's ctx (its emit_chunk needs "
                "the message it answers); pass on_progress= to MCPConnector to see it",
                server,
                tool,
            )
            self.ctx = None
        self.stream_id = f"mcp-progress:{server}.{tool}:{next(_streams)}"
        self._seq = 0
        self._open = False
        self._done = False
        self._warned: set[str] = set()
        self._lock = anyio.Lock()
        #: every notification received, in order (for tests and debugging)
        self.received: list[MCPProgress] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        update = MCPProgress(self.server, self.tool, progress, total, message)
        self.received.append(update)
        async with self._lock:
            if self.on_progress is not None:
                try:
                    outcome = self.on_progress(update)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception as exc:
                    self._warn("on_progress", exc)
            done = total is not None and progress >= total
            await self._chunk(update.text, done=done, update=update)

    async def finish(self) -> None:
        """The call ended: close its stream if one was opened and is still open."""
        async with self._lock:
            if self._open and not self._done:
                await self._chunk("", done=True, update=None)

    async def _chunk(self, text: str, *, done: bool, update: MCPProgress | None) -> None:
        if self.ctx is None or self._done:
            return
        meta: dict[str, Any] = {"channel": "progress", "server": self.server, "tool": self.tool}
        if update is not None:
            meta.update(progress=update.progress, total=update.total, message=update.message)
        try:
            await self.ctx.emit_chunk(self.stream_id, self._seq, text, done=done, meta=meta)
        except Exception as exc:
            # e.g. a context whose run has ended; the call itself is unaffected
            self._warn("the running tool context", exc)
            self.ctx = None
            return
        self._seq += 1
        self._open = True
        self._done = done

    def _warn(self, where: str, exc: Exception) -> None:
        if where in self._warned:
            return
        self._warned.add(where)
        logger.warning(
            "progress of %s.%s could not be forwarded to %s (the call goes on): %s",
            self.server,
            self.tool,
            where,
            describe_exception(exc),
        )


def log_handler(server_logger: logging.Logger, server: str) -> Callable[[Any], Awaitable[None]]:
    """The SDK's `logging_callback`: each `notifications/message` logged on `server_logger`
    at the matching level; the server's sub-logger name (`logger`) prefixes the text, and
    the record's `extra` has `mcp_server`, `mcp_level`, `mcp_logger`."""

    async def on_log(params: Any) -> None:
        level = MCP_LOG_LEVELS.get(str(params.level), logging.INFO)
        if not server_logger.isEnabledFor(level):
            return
        data = params.data
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        where = f"[{params.logger}] " if params.logger else ""
        server_logger.log(
            level,
            "%s%s",
            where,
            text,
            extra={"mcp_server": server, "mcp_level": params.level, "mcp_logger": params.logger},
        )

    return on_log


def notification_handler(
    server: str, routes: dict[str, Callable[[Any], Awaitable[None] | None]]
) -> Callable[[Any], Awaitable[None]]:
    """The SDK's `message_handler`: each notification whose method is in `routes` goes to
    its route with the notification's params; the others (progress and log messages, which
    have their own callbacks, and transport errors, which the calls see) are ignored, as are
    the events of a `subscriptions/listen` stream, which `ChangeListener` routes."""

    async def on_message(message: Any) -> None:
        if _from_listen_stream(message):
            return  # the SDK shows it here too; ChangeListener handles it from the stream
        await _route(server, routes, message)

    return on_message


#: the notifications whose params carry this `_meta` key came on a `subscriptions/listen`
#: stream (mcp.shared.subscriptions.SUBSCRIPTION_ID_META_KEY); `ChangeListener` handles them
_LISTEN_META_KEY = "io.modelcontextprotocol/subscriptionId"
#: a listen stream that drops this many times in a row, with no event between, is given up
_MAX_LISTEN_DROPS = 3


def listen_supported(client: Any) -> bool:
    """Whether the session negotiated a protocol with `subscriptions/listen` (2026-07-28):
    there, list changes and resource updates reach the client only on such a stream."""
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    return getattr(client.session, "protocol_version", None) in MODERN_PROTOCOL_VERSIONS


class ChangeListener:
    """The `subscriptions/listen` stream of one 2026-07-28 session, kept open for the
    session's life; its events go to the same `routes` as the notifications older servers
    send (`notification_handler`), so both eras are handled alike.

    A stream that drops while the session lives is opened again, and since events may have
    been missed meanwhile every listing is treated as changed. When it cannot be opened again
    (nearly always: the connection is gone) or keeps dropping, `lost()` is called and the
    session is closed: a session that no longer hears of changes would serve a stale catalog
    without saying so, and the next call opens a new session, which lists afresh.
    `uris()` gives the resource URIs subscribed to; `relisten()` opens the stream again with
    the current ones (the filter of a listen stream is fixed when it opens)."""

    def __init__(
        self,
        server: str,
        routes: dict[str, Callable[[Any], Awaitable[None] | None]],
        uris: Callable[[], list[str]],
    ) -> None:
        self.server = server
        self.routes = routes
        self.uris = uris
        self._scope: anyio.CancelScope | None = None
        #: the honored filter of the open stream (None before the first one is acknowledged)
        self.honored: Any = None
        #: how many events were delivered (for tests and debugging)
        self.delivered = 0
        #: set each time a stream is acknowledged (made anew by `relisten_and_wait`)
        self._acknowledged = anyio.Event()

    def relisten(self) -> None:
        """Open the stream again with the current `uris()` (a subscription was added or
        ended); nothing happens if no stream is open."""
        if self._scope is not None:
            self._scope.cancel()

    async def relisten_and_wait(self, timeout_s: float = 30.0) -> None:
        """`relisten()`, and return once the new stream is acknowledged, so an update sent
        after a subscription returns is not missed. A stream being opened meanwhile notices
        the new `uris()` itself (`run` compares them once acknowledged)."""
        self._acknowledged = anyio.Event()
        self.relisten()
        with anyio.move_on_after(timeout_s):
            await self._acknowledged.wait()

    async def run(
        self,
        client: Any,
        lost: Callable[[], None],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep the stream open until cancelled (the session closing); `task_status` is set
        once the first stream is acknowledged (or could not be opened), so no change made
        after the session is ready is missed."""
        from mcp.client.subscriptions import SubscriptionLost
        from mcp.shared.exceptions import MCPError as SDKError

        started = False
        drops = 0  # drops in a row with no event delivered between
        resync = False  # the last stream dropped: events may have been missed
        while True:
            delivered = self.delivered
            acknowledged = False
            asked = self.uris()
            try:
                async with client.listen(
                    tools_list_changed=True,
                    prompts_list_changed=True,
                    resources_list_changed=True,
                    resource_subscriptions=asked,
                ) as stream:
                    acknowledged = True
                    self.honored = stream.honored
                    if sorted(self.uris()) != sorted(asked):
                        continue  # subscribed to meanwhile: open it with the new filter
                    self._acknowledged.set()
                    if not started:
                        started = True
                        task_status.started()
                    if resync:
                        await self._everything_changed()
                        delivered = self.delivered  # only the server's events count
                    if not await self._serve(stream):
                        resync = False
                        continue  # relisten(): the subscribed URIs changed
                failure = "the server closed it"
            except (SubscriptionLost, SDKError, TimeoutError) as exc:
                if not started:
                    # The server refused the stream: it works without change notifications.
                    logger.warning(
                        "MCP server %r refused subscriptions/listen; the connector will not "
                        "hear of tool, prompt or resource changes from it: %s",
                        self.server,
                        describe_exception(exc),
                    )
                    task_status.started()
                    return
                failure = describe_exception(exc)
            drops = drops + 1 if self.delivered == delivered else 1
            if not acknowledged or drops >= _MAX_LISTEN_DROPS:
                logger.warning(
                    "MCP server %r: its subscriptions/listen stream was lost (%s)%s; closing "
                    "the session, the next call opens a new one",
                    self.server,
                    failure,
                    "" if not acknowledged else f", {drops} times in a row",
                )
                lost()
                return
            logger.info(
                "MCP server %r: its subscriptions/listen stream ended (%s); opening it again",
                self.server,
                failure,
            )
            resync = True

    async def _serve(self, stream: Any) -> bool:
        """Deliver the stream's events until it ends: True when the server closed it (open
        it again, with a resync), False when `relisten()` asked. A drop raises
        SubscriptionLost."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                async for event in stream:
                    await self._deliver(event)
            finally:
                self._scope = None
            return True
        return False

    async def _deliver(self, event: Any) -> None:
        from mcp.shared.subscriptions import event_to_notification

        self.delivered += 1
        notification = event_to_notification(event, {})
        await _route(self.server, self.routes, notification)

    async def _everything_changed(self) -> None:
        """After a drop: events may have been missed, so every listing counts as changed."""
        from mcp.shared.subscriptions import (
            PromptsListChanged,
            ResourcesListChanged,
            ToolsListChanged,
        )

        for event in (ToolsListChanged(), PromptsListChanged(), ResourcesListChanged()):
            await self._deliver(event)


async def _route(
    server: str, routes: dict[str, Callable[[Any], Awaitable[None] | None]], message: Any
) -> None:
    route = routes.get(getattr(message, "method", None) or "")
    if route is None:
        return
    try:
        outcome = route(getattr(message, "params", None))
        if inspect.isawaitable(outcome):
            await outcome
    except Exception as exc:
        logger.warning(
            "MCP server %r: handling %s failed: %s",
            server,
            getattr(message, "method", "?"),
            describe_exception(exc),
        )


def _from_listen_stream(message: Any) -> bool:
    meta = getattr(getattr(message, "params", None), "meta", None)
    return isinstance(meta, dict) and _LISTEN_META_KEY in meta
