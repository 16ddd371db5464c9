"""Resources, resource templates, prompts and completions of an MCP server, as typed values
that do not depend on the SDK's models (they stay the same when the SDK changes)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from penguiflow.errors import ConfigurationError, PenguiFlowError
from penguiflow.llm import IMAGE_MEDIA_TYPES, LLMImage, LLMMessage
from penguiflow.resources import AsyncResource

__all__ = [
    "MCPCompletion",
    "MCPPrompt",
    "MCPPromptArgument",
    "MCPPromptError",
    "MCPPromptResult",
    "MCPResource",
    "MCPResourceTemplate",
    "MCPResourceUpdate",
    "MCPSubscription",
    "expand_template",
]


class MCPPromptError(PenguiFlowError, ValueError):
    """A prompt asked for with missing or unknown arguments (checked before sending)."""


@dataclass(frozen=True, slots=True)
class MCPResource:
    """A resource the server lists (`read_resource(uri)` reads it)."""

    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None


_VARIABLE = re.compile(r"\{([^{}]*)\}")


def expand_template(template: str, **values: object) -> str:
    """`template` with each `{name}` replaced by `values[name]`, percent-encoded (RFC 6570
    level 1: only letters, digits and `-._~` are kept as they are). A variable with no value
    raises `ConfigurationError` naming it; operators of higher levels (`{+x}`, `{?x}`) are
    not supported and raise too."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigurationError(
                f"URI template {template!r}: {{{name}}} is not a level-1 variable; only "
                "{name} is supported, expand it yourself"
            )
        if name not in values:
            raise ConfigurationError(
                f"URI template {template!r} needs a value for {name!r}; pass {name}=..."
            )
        return quote(str(values[name]), safe="")

    return _VARIABLE.sub(replace, template)


@dataclass(frozen=True, slots=True)
class MCPResourceTemplate:
    """A family of resources the server lists as a URI template (RFC 6570)."""

    uri_template: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        """The template's variable names, in order."""
        return tuple(_VARIABLE.findall(self.uri_template))

    def expand(self, **values: object) -> str:
        """The URI of one resource of the family (see `expand_template`)."""
        return expand_template(self.uri_template, **values)


@dataclass(frozen=True, slots=True)
class MCPPromptArgument:
    name: str
    description: str | None = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class MCPPrompt:
    """A prompt the server lists; `get_prompt(name, arguments)` renders it."""

    name: str
    title: str | None = None
    description: str | None = None
    arguments: tuple[MCPPromptArgument, ...] = ()

    def check(self, server: str, arguments: Mapping[str, str]) -> None:
        """Raise `MCPPromptError` when a required argument is missing or one is unknown."""
        known = {arg.name for arg in self.arguments}
        missing = [a.name for a in self.arguments if a.required and a.name not in arguments]
        unknown = sorted(set(arguments) - known)
        if missing:
            raise MCPPromptError(
                f"prompt {self.name!r} of MCP server {server!r} needs argument(s) "
                f"{', '.join(map(repr, missing))} (not sent); it takes: "
                f"{', '.join(self._described()) or 'no arguments'}"
            )
        if unknown:
            raise MCPPromptError(
                f"prompt {self.name!r} of MCP server {server!r} has no argument(s) "
                f"{', '.join(map(repr, unknown))} (not sent); it takes: "
                f"{', '.join(self._described()) or 'no arguments'}"
            )

    def _described(self) -> list[str]:
        return [f"{a.name}{'' if a.required else ' (optional)'}" for a in self.arguments]


@dataclass(frozen=True, slots=True)
class MCPPromptResult:
    """A rendered prompt: `messages` are penguiflow LLM messages, ready for an LLM client
    (`client.complete(messages=result.messages, ...)`)."""

    name: str
    description: str | None
    messages: list[LLMMessage]


@dataclass(frozen=True, slots=True)
class MCPCompletion:
    """Suggested values for an argument: `values` (at most 100), `total` when the server
    knows how many there are, `has_more` when there are more than it sent."""

    values: tuple[str, ...]
    total: int | None = None
    has_more: bool = False


@dataclass(frozen=True, slots=True)
class MCPResourceUpdate:
    """`notifications/resources/updated`: the resource at `uri` changed; read it again."""

    server: str
    uri: str


# -- conversions from the SDK's models ---------------------------------------------------------


def resource_from(item: Any) -> MCPResource:
    return MCPResource(
        uri=str(item.uri),
        name=item.name,
        title=item.title,
        description=item.description,
        mime_type=item.mime_type,
        size=item.size,
    )


def template_from(item: Any) -> MCPResourceTemplate:
    return MCPResourceTemplate(
        uri_template=item.uri_template,
        name=item.name,
        title=item.title,
        description=item.description,
        mime_type=item.mime_type,
    )


def prompt_from(item: Any) -> MCPPrompt:
    return MCPPrompt(
        name=item.name,
        title=item.title,
        description=item.description,
        arguments=tuple(
            MCPPromptArgument(a.name, a.description, bool(a.required)) for a in item.arguments or ()
        ),
    )


def _content_text(content: Any, images: list[LLMImage], role: str) -> str:
    """The text of one prompt content block; an image a user message can carry goes to
    `images` instead. What an LLM message cannot hold (audio, binary resources, images in
    assistant messages) is described in a bracketed note, never pasted as base64."""
    kind = getattr(content, "type", None)
    if kind == "text":
        return str(content.text)
    if kind == "image":
        if role == "user" and content.mime_type in IMAGE_MEDIA_TYPES:
            images.append(LLMImage(data=content.data, media_type=content.mime_type))
            return ""
        return f"[image ({content.mime_type}) left out]"
    if kind == "audio":
        return f"[audio ({content.mime_type}) left out]"
    if kind == "resource":
        resource = content.resource
        uri = str(resource.uri)
        text = getattr(resource, "text", None)
        if text is not None:
            return f"[resource {uri}]\n{text}"
        blob = getattr(resource, "blob", None)
        size = len(base64.b64decode(blob)) if isinstance(blob, str) else 0
        return (
            f"[binary resource {uri} ({resource.mime_type or 'unknown type'}, {size} bytes) "
            "left out; read_resource(uri) returns it]"
        )
    if kind == "resource_link":
        return f"[resource link {content.uri}: {content.name}]"
    return f"[{kind} content left out]"


def prompt_result_from(name: str, result: Any) -> MCPPromptResult:
    messages: list[LLMMessage] = []
    for message in result.messages:
        role: Literal["user", "assistant"] = "assistant" if message.role == "assistant" else "user"
        images: list[LLMImage] = []
        text = _content_text(message.content, images, role)
        messages.append(LLMMessage(role=role, content=text, images=images))
    return MCPPromptResult(name=name, description=result.description, messages=messages)


# -- subscriptions -----------------------------------------------------------------------------

UpdateCallback = Callable[[MCPResourceUpdate], Awaitable[None] | None]


class MCPSubscription(AsyncResource):
    """A subscription to one resource's updates: an async iterator of `MCPResourceUpdate`
    (`async for update in subscription`), ending once it is closed, and/or the `on_update`
    callback given to `subscribe_resource`. Updates coalesce: one arriving while another is
    still waiting to be taken is merged into it (an update only says "changed"; read the
    resource for its state). `aclose()` (or leaving `async with subscription:`)
    unsubscribes; idempotent. Subscriptions are sent again on a new session (after a
    reconnect)."""

    def __init__(
        self,
        server: str,
        uri: str,
        *,
        unsubscribe: Callable[[MCPSubscription], Awaitable[None]],
        on_update: UpdateCallback | None = None,
    ) -> None:
        self.server = server
        self.uri = uri
        self.on_update = on_update
        self.closed = False
        self._unsubscribe = unsubscribe
        self._queue: asyncio.Queue[MCPResourceUpdate | None] = asyncio.Queue(maxsize=1)

    def __repr__(self) -> str:
        return f"MCPSubscription({self.server!r}, {self.uri!r}{', closed' if self.closed else ''})"

    async def deliver(self, update: MCPResourceUpdate) -> None:
        if self.closed:
            return
        # A full queue holds an update already, which says the same.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(update)
        if self.on_update is not None:
            outcome = self.on_update(update)
            if inspect.isawaitable(outcome):
                await outcome

    def __aiter__(self) -> MCPSubscription:
        return self

    async def __anext__(self) -> MCPResourceUpdate:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        update = await self._queue.get()
        if update is None:
            raise StopAsyncIteration
        return update

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)  # wakes an `async for` waiting for the next update
        await self._unsubscribe(self)
