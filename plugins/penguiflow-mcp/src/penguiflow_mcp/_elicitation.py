"""Elicitation: a server asks the user for input in the middle of a tool call.

With `MCPConnector(..., elicitation=callback)` the callback gets an `ElicitationRequest` and
returns an `ElicitationAnswer`; accepted form content is checked against the schema the
server requested before anything is sent. Without a callback, a call made by a planner tool
(`penguiflow.current.current_context()` has `pause`) pauses the planner for a human: the
server is answered `cancel`, the tool call finishes, then the planner's pause is raised with
what the server asked in its payload (the planner plans again with the human's input on
resume). Otherwise the server is answered `cancel` and a log line says how to answer instead.

The SDK runs the callback in the session's own task, not in the caller's, so the request is
attributed to a tool call by the calls in flight: the only one in flight on the connector,
or none when several are (then the server is answered `cancel` and a line is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from penguiflow.current import current_context
from penguiflow.errors import PenguiFlowError, describe_exception

from ._schema import ArgumentChecker

__all__ = [
    "ElicitationAnswer",
    "ElicitationCallback",
    "ElicitationRequest",
    "Elicitations",
    "MCPElicitationError",
]

logger = logging.getLogger("penguiflow.mcp")


class MCPElicitationError(PenguiFlowError, ValueError):
    """The elicitation callback failed, or returned content that does not match the schema
    the server requested (that content was not sent: the server was answered `cancel`)."""


@dataclass(frozen=True, slots=True)
class ElicitationRequest:
    """What a server asks the user. `mode` "form": fill `requested_schema` (a flat JSON
    Schema object of strings, numbers, booleans and enums); "url": open `url` (for sign-ins
    and payments that must not pass through the client). `tool` is the call it came from,
    None when it could not be told."""

    server: str
    tool: str | None
    message: str
    mode: Literal["form", "url"] = "form"
    requested_schema: Mapping[str, Any] | None = None
    url: str | None = None
    elicitation_id: str | None = None


@dataclass(frozen=True, slots=True)
class ElicitationAnswer:
    """The user's answer: `accept` (with `content` matching the schema, in form mode),
    `decline` (an explicit no) or `cancel` (dismissed)."""

    action: Literal["accept", "decline", "cancel"]
    content: Mapping[str, Any] | None = None

    @classmethod
    def accept(cls, content: Mapping[str, Any] | None = None) -> ElicitationAnswer:
        return cls("accept", dict(content) if content is not None else None)

    @classmethod
    def decline(cls) -> ElicitationAnswer:
        return cls("decline")

    @classmethod
    def cancel(cls) -> ElicitationAnswer:
        return cls("cancel")


#: `elicitation=` of `MCPConnector`
ElicitationCallback = Callable[[ElicitationRequest], Awaitable[ElicitationAnswer]]


@dataclass(slots=True)
class _Call:
    """One tool call in flight, and what an elicitation during it left to do after it."""

    tool: str
    context: Any  # current_context() of the caller (the planner's tool context, a node's ctx)
    failure: MCPElicitationError | None = None
    pause_payload: dict[str, Any] | None = None
    requests: list[ElicitationRequest] = field(default_factory=list)


class Elicitations:
    """The `elicitation_callback` of the connector's sessions, and its tool-call tracking."""

    def __init__(self, server: str, callback: ElicitationCallback | None) -> None:
        self.server = server
        self.callback = callback
        self._calls: list[_Call] = []

    @contextmanager
    def tracking(self, tool: str) -> Iterator[_Call]:
        """Around one tool call, made in the caller's task (where `current_context()` is)."""
        call = _Call(tool, current_context())
        self._calls.append(call)
        try:
            yield call
        finally:
            self._calls.remove(call)

    async def settle(self, call: _Call) -> None:
        """After the tool call answered: raise what its elicitations left (a bad answer, or
        the planner's pause)."""
        if call.failure is not None:
            raise call.failure
        if call.pause_payload is None:
            return
        try:
            await call.context.pause("await_input", call.pause_payload)
        except PenguiFlowError as exc:
            # A planner built with pause_enabled=False refuses (PauseUnavailableError); its
            # own pause signal (PauseRequested) is a PenguiFlowError too and must go through.
            if type(exc).__name__ != "PauseUnavailableError":
                raise
            logger.info(
                "MCP server %r asked for input during %s; answered cancel (this planner "
                "cannot pause: %s). Pass elicitation=<callback> to MCPConnector to answer it",
                self.server,
                call.tool,
                describe_exception(exc),
            )

    async def __call__(self, context: Any, params: Any) -> Any:
        import mcp_types as types

        call = self._calls[0] if len(self._calls) == 1 else None
        request = ElicitationRequest(
            server=self.server,
            tool=call.tool if call is not None else None,
            message=params.message,
            mode="url" if getattr(params, "mode", "form") == "url" else "form",
            requested_schema=_schema(params),
            url=getattr(params, "url", None),
            elicitation_id=getattr(params, "elicitation_id", None),
        )
        if call is not None:
            call.requests.append(request)
        cancel = types.ElicitResult(action="cancel")
        if self.callback is not None:
            outcome = await self._answer_with_callback(request)
            if isinstance(outcome, MCPElicitationError):
                if call is not None and call.failure is None:
                    call.failure = outcome
                else:
                    logger.warning("%s", outcome)
                return cancel
            return outcome
        if len(self._calls) > 1:
            logger.warning(
                "MCP server %r asked for input (%r) while %d calls were in flight (%s); it "
                "cannot be told which one asked, so it was answered cancel",
                self.server,
                request.message,
                len(self._calls),
                ", ".join(c.tool for c in self._calls),
            )
            return cancel
        pause = getattr(call.context, "pause", None) if call is not None else None
        if call is not None and callable(pause) and call.pause_payload is None:
            call.pause_payload = _pause_payload(request)
            return cancel
        logger.info(
            "MCP server %r asked for input%s (%r); answered cancel: no elicitation callback "
            "and no planner to pause. Pass elicitation=<async callback> to MCPConnector "
            "to answer such requests",
            self.server,
            f" during {request.tool}" if request.tool else "",
            request.message,
        )
        return cancel

    async def _answer_with_callback(self, request: ElicitationRequest) -> Any:
        """The SDK result for the callback's answer, or the MCPElicitationError to raise."""
        import mcp_types as types

        assert self.callback is not None
        where = f"{self.server}.{request.tool}" if request.tool else repr(self.server)
        try:
            answer = await self.callback(request)
        except Exception as exc:
            return MCPElicitationError(
                f"the elicitation callback failed answering MCP server {where} "
                f"({request.message!r}): {type(exc).__name__}: {describe_exception(exc)}; "
                "the server was answered cancel"
            )
        if not isinstance(answer, ElicitationAnswer):
            return MCPElicitationError(
                f"the elicitation callback returned {type(answer).__name__} for {where}; "
                "return ElicitationAnswer.accept(content), .decline() or .cancel()"
            )
        if answer.action != "accept" or request.mode == "url":
            return types.ElicitResult(action=answer.action)
        content = dict(answer.content or {})
        errors = ArgumentChecker(f"{where} elicitation", request.requested_schema or {}).errors(
            content
        )
        if errors:
            return MCPElicitationError(
                f"the elicitation answer for {where} does not match the schema the server "
                f"requested (not sent; the server was answered cancel): {'; '.join(errors)}"
            )
        return types.ElicitResult(action="accept", content=content)


def _schema(params: Any) -> Mapping[str, Any] | None:
    schema = getattr(params, "requested_schema", None)
    if schema is None:
        return None
    if hasattr(schema, "model_dump"):
        dumped: Mapping[str, Any] = schema.model_dump(by_alias=True, exclude_none=True)
        return dumped
    return dict(schema)


def _pause_payload(request: ElicitationRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "kind": "mcp_elicitation",
        "server": request.server,
        "tool": request.tool,
        "message": request.message,
        "mode": request.mode,
        "requested_schema": dict(request.requested_schema or {}),
        "note": (
            "the MCP server asked for this input during the tool call and was answered "
            "cancel; resume with the answer, and the call can be made again with it"
        ),
    }
    if request.url is not None:
        payload["url"] = request.url
    return payload
