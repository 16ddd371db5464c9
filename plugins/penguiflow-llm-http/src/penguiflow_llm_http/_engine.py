"""`ProviderClient`: the provider-independent part of an HTTP LLM adapter.

An adapter supplies a `ProviderCodec` (how its API spells requests, replies and stream
events) and a `Transport` (how bytes move); this class does the rest the same way for every
provider: structured-output modes with a fallback chain remembered per (model, schema),
reply validation with repair attempts, truncation detection, retries with backoff, streaming
with chunk and reasoning callbacks, usage summed over attempts, and cost from a pricing table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from penguiflow.errors import describe_exception
from penguiflow.llm import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMMessage,
    LLMReplyError,
    LLMResponse,
    LLMStreamError,
    LLMTimeoutError,
    LLMTool,
    LLMToolCall,
    LLMTruncationError,
    LLMUsage,
    ResponseFormat,
    StreamCallback,
    ToolChoice,
    ToolLike,
    normalize_messages,
    tool_definitions,
    validate_reply,
)
from penguiflow.observability import Observation, capture_content, clip_content, observe
from penguiflow.resources import AsyncResource

from ._observe import gen_ai_system, record_response
from ._pricing import PricingTable
from ._retry import RetryPolicy
from ._schema import ModelProfile, SchemaMode, repair_instructions, schema_name, schema_of
from ._sse import SSEEvent, iter_sse

# The kernel's name, not this package's: retries have always been logged on `penguiflow.llm`,
# and logging set up for the `penguiflow` tree keeps covering them.
logger = logging.getLogger("penguiflow.llm")

__all__ = [
    "ProviderClient",
    "ProviderCodec",
    "ProviderReply",
    "ProviderRequest",
    "StreamDelta",
    "ToolCallDelta",
    "Transport",
]


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    path: str
    body: dict[str, Any]
    #: text the request already put in the model's mouth (a prefilled `{`); the reply
    #: continues it, so it is put back in front of the reply and of the stream
    reply_prefix: str = ""
    #: whether the request offered the caller's tools. When it did not, tool calls a codec
    #: reads are its own structured-output device (Anthropic's forced tool): their
    #: arguments are the reply text, and the client treats them so
    native_tools: bool = False


@dataclass(frozen=True, slots=True)
class ProviderReply:
    text: str
    reasoning: str | None = None
    usage: LLMUsage | None = None
    model: str | None = None
    #: in `LLMResponse.finish_reason`'s vocabulary (`stop`, `length`, `tool_calls`, ...)
    finish_reason: str | None = None
    tool_calls: tuple[LLMToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. Pieces with one `index` make one call: the first
    usually brings `id` and `name`, later ones more `arguments` JSON text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """What one stream event adds; `done` marks the provider's end-of-reply event. `usage`
    holds the counts so far (the largest seen of each is kept)."""

    text: str = ""
    reasoning: str = ""
    usage: LLMUsage | None = None
    model: str | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    done: bool = False


class ProviderCodec(Protocol):
    """A provider's wire format. Methods raise `ValueError` for an answer they cannot read."""

    name: str

    def build_request(
        self,
        *,
        model: str,
        messages: list[LLMMessage],
        mode: SchemaMode | None,
        schema: dict[str, Any] | None,
        schema_name: str,
        stream: bool,
        options: Mapping[str, Any],
    ) -> ProviderRequest: ...

    def parse_reply(self, body: Any) -> ProviderReply: ...

    def parse_event(self, event: SSEEvent) -> StreamDelta | None: ...

    def rejects_mode(self, error: LLMHTTPError, mode: SchemaMode) -> bool:
        """True when `error` says the provider or model does not support `mode` (for this
        schema); `penguiflow_llm_http.is_mode_refusal` is the common classifier."""
        ...

    # Optional, looked up with getattr so codecs written before them keep working:
    #   supports_tools = True: build_request takes `tools: list[LLMTool]` and
    #   `tool_choice: ToolChoice | None` keywords (passed only when the caller gave tools)
    #   supports_images = True: the codec sends `LLMMessage.images`
    #   map_reply(text: str, *, mode: SchemaMode, schema: dict[str, Any]) -> str
    # turns a reply to the schema the codec actually sent (a strict-mode rewrite, say) back
    # into a reply to `schema`, before it is validated.


class Transport(Protocol):
    """How bytes move. A transport that sends credentials may also have `redact(text) ->
    str` (optional, looked up with `getattr`): `ProviderClient` passes the errors it builds
    from a provider's answers through it, so an echoed secret does not reach them."""

    async def post_json(self, path: str, body: Mapping[str, Any]) -> Any: ...

    def post_stream(
        self, path: str, body: Mapping[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[str]]: ...

    async def aclose(self) -> None: ...


class ProviderClient(AsyncResource):
    """A `JSONLLMClient` for one model of one provider; `aclose()` (or `async with`) closes
    its transport."""

    def __init__(
        self,
        *,
        model: str,
        codec: ProviderCodec,
        transport: Transport,
        profile: ModelProfile,
        pricing: PricingTable | None = None,
        retry: RetryPolicy | None = None,
        max_repairs: int = 2,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if max_repairs < 0:
            raise LLMConfigurationError(
                f"max_repairs must be >= 0 (0 turns repair off), got {max_repairs}"
            )
        self.model = model
        self.codec = codec
        self.transport = transport
        self.profile = profile
        self.pricing = pricing or PricingTable()
        self.retry = retry or RetryPolicy()
        self.max_repairs = max_repairs
        self.options = dict(options or {})
        #: modes the provider refused, per (model, schema): one schema a server cannot
        #: compile says nothing about the next one, so a refusal never spreads further
        self._refused: dict[tuple[str, str], set[SchemaMode]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, profile={self.profile.name!r})"

    @property
    def schema_mode(self) -> SchemaMode:
        """The structured-output mode a request with a schema not refused yet starts with."""
        return self.profile.schema_modes[0]

    def schema_mode_for(self, response_format: ResponseFormat) -> SchemaMode:
        """The mode the next request with `response_format` will use: the profile's best
        one that the provider has not refused for this model and schema."""
        schema = schema_of(response_format)
        if schema is None:
            raise LLMConfigurationError("schema_mode_for needs a response_format, got None")
        return self._modes_for(schema)[0]

    def _key(self, schema: Mapping[str, Any]) -> tuple[str, str]:
        return self.model, json.dumps(schema, sort_keys=True, default=str)

    def _modes_for(self, schema: Mapping[str, Any]) -> list[SchemaMode]:
        refused = self._refused.get(self._key(schema), set())
        return [mode for mode in self.profile.schema_modes if mode not in refused]

    async def aclose(self) -> None:
        """Close the transport; later calls do nothing (transports need not be idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self.transport.aclose()

    async def complete(
        self,
        *,
        messages: Sequence[LLMMessage | Mapping[str, Any]],
        response_format: ResponseFormat = None,
        stream: bool = False,
        on_stream_chunk: StreamCallback | None = None,
        on_reasoning_chunk: StreamCallback | None = None,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> LLMResponse:
        """Send `messages`; with `response_format`, return JSON text that matches it.

        With `tools`, the model may answer with calls instead: they are on
        `LLMResponse.tool_calls` (streamed ones put together), and the text is not checked
        against `response_format`, since the model has not given its answer yet.

        A reply that does not match is sent back to the model with its validation errors up
        to `max_repairs` times, then `LLMReplyError` is raised. Usage and cost add up every
        attempt. With `stream=True` each attempt's text goes to `on_stream_chunk` as it
        arrives and `(\"\", True)` ends it.

        When someone observes (`penguiflow.observability`), the call is one `llm.call` event
        with the OpenTelemetry GenAI attributes, and its requests carry its `traceparent`."""
        async with observe("llm", "call", attributes=self._call_attributes(stream)) as unit:
            response = await self._complete(
                unit, messages, response_format, stream, on_stream_chunk, on_reasoning_chunk,
                tools, tool_choice,
            )  # fmt: skip
            if unit.active:
                record_response(unit, response)
            return response

    def _call_attributes(self, stream: bool) -> dict[str, Any]:
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": gen_ai_system(self.codec.name),
            "gen_ai.request.model": self.model,
            "stream": stream,
            "retries": 0,
        }

    async def _complete(
        self,
        unit: Observation,
        messages: Sequence[LLMMessage | Mapping[str, Any]],
        response_format: ResponseFormat,
        stream: bool,
        on_stream_chunk: StreamCallback | None,
        on_reasoning_chunk: StreamCallback | None,
        tools: Sequence[ToolLike] | None,
        tool_choice: ToolChoice | None,
    ) -> LLMResponse:
        conversation = normalize_messages(messages)
        if unit.active and capture_content():
            unit.attributes["gen_ai.input.messages"] = clip_content(
                [message.model_dump(mode="json", exclude_defaults=True) for message in conversation]
            )
        extra = self._tool_arguments(conversation, tools, tool_choice)
        schema = schema_of(response_format)
        name = schema_name(response_format, schema) if schema is not None else "response"
        usage = LLMUsage()
        reported = False
        repairs = 0
        while True:
            mode = self._modes_for(schema)[0] if schema is not None else None
            request = self.codec.build_request(
                model=self.model,
                messages=conversation,
                mode=mode,
                schema=schema,
                schema_name=name,
                stream=stream,
                options=self.options,
                **extra,
            )
            try:
                if stream:
                    reply = await self._stream(
                        request, mode, on_stream_chunk, on_reasoning_chunk, unit
                    )
                else:
                    reply = await self._send(request, mode, unit)
            except LLMHTTPError as exc:
                if schema is not None and self._refuses(exc, mode):
                    assert mode is not None  # _refuses says no without a mode
                    self._drop_mode(schema, name, mode, exc)
                    logger.info(
                        "%s refused structured-output mode %r for %r with schema %s; using %r "
                        "for this schema from now on",
                        self.codec.name,
                        mode,
                        self.model,
                        name,
                        self._modes_for(schema)[0],
                    )
                    continue
                raise
            if reply.usage is not None:
                reported = True
                usage = _add_usage(usage, reply.usage)
            if reply.tool_calls and not request.native_tools:
                # The codec's own device for structured output: the call's input is the reply.
                folded = "".join(json.dumps(call.arguments) for call in reply.tool_calls)
                reply = dataclasses.replace(reply, text=reply.text + folded, tool_calls=())
            if reply.tool_calls:
                model = reply.model or self.model
                total = usage if reported else None
                return LLMResponse(
                    text=reply.text,
                    usage=total,
                    cost_usd=self.pricing.cost(model, total),
                    model=model,
                    reasoning=reply.reasoning,
                    finish_reason=reply.finish_reason or "tool_calls",
                    tool_calls=list(reply.tool_calls),
                )
            reply_text = reply.text
            map_reply = getattr(self.codec, "map_reply", None)
            if schema is not None and mode is not None and callable(map_reply):
                reply_text = map_reply(reply_text, mode=mode, schema=schema)
            text, errors = validate_reply(reply_text, response_format)
            if not errors:
                model = reply.model or self.model
                total = usage if reported else None
                return LLMResponse(
                    text=text,
                    usage=total,
                    cost_usd=self.pricing.cost(model, total),
                    model=model,
                    reasoning=reply.reasoning,
                    finish_reason=reply.finish_reason,
                )
            if reply.finish_reason == "length":
                # Cut by the token limit: a repair round runs into the same limit, so it
                # would only spend tokens to fail the same way.
                limit = request.body.get("max_tokens") or request.body.get("max_completion_tokens")
                shown = f" ({limit})" if isinstance(limit, int) else ""
                raise LLMTruncationError(
                    f"{self.codec.name} model {self.model!r} stopped at the max_tokens limit"
                    f"{shown} before its {name} JSON was complete ({len(reply.text)} characters "
                    "received); raise max_tokens or ask for a shorter reply. No repair round "
                    "was tried: it would be cut the same way",
                    text=reply.text,
                    errors=errors,
                    max_tokens=limit if isinstance(limit, int) else None,
                )
            if repairs >= self.max_repairs:
                raise LLMReplyError(
                    f"{self.codec.name} model {self.model!r} did not reply with JSON matching "
                    f"{name} after {repairs + 1} attempt(s) (mode {mode}); last errors: "
                    f"{'; '.join(errors[:3])}. Simplify the schema, raise max_repairs or use "
                    "a stronger model",
                    text=reply.text,
                    errors=errors,
                )
            repairs += 1
            if unit.active:
                unit.attributes["repairs"] = repairs
            conversation = [
                *conversation,
                LLMMessage(role="assistant", content=reply.text),
                LLMMessage(role="user", content=repair_instructions(errors, schema)),
            ]

    def _tool_arguments(
        self,
        conversation: list[LLMMessage],
        tools: Sequence[ToolLike] | None,
        tool_choice: ToolChoice | None,
    ) -> dict[str, Any]:
        """The extra `build_request` keywords for `tools`, after checking that the codec can
        send what the request holds (tools, images) and that `tool_choice` fits."""
        if any(message.images for message in conversation) and not getattr(
            self.codec, "supports_images", False
        ):
            raise LLMConfigurationError(
                f"{self.codec.name} adapter cannot send images (its codec has no "
                "supports_images); send text only or use an adapter with image input"
            )
        if not tools:
            if tool_choice is not None:
                raise LLMConfigurationError(
                    f"tool_choice={tool_choice!r} was given without tools: pass tools=[...]"
                )
            return {}
        if not getattr(self.codec, "supports_tools", False):
            raise LLMConfigurationError(
                f"{self.codec.name} adapter cannot offer tools natively (its codec has no "
                "supports_tools); describe the tools in the prompt instead"
            )
        definitions: list[LLMTool] = tool_definitions(tools)
        names = [tool.name for tool in definitions]
        if tool_choice not in (None, "auto", "required", "none", *names):
            raise LLMConfigurationError(
                f"tool_choice={tool_choice!r} is not 'auto', 'required', 'none' or one of the "
                f"tools {names}"
            )
        return {"tools": definitions, "tool_choice": tool_choice}

    # -- secrets -------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        """`text` without the credentials the transport sent. A transport that can redact
        has a `redact(text)` method (`HTTPXTransport` does); it is optional in the
        `Transport` protocol, so transports written before it keep working."""
        redact = getattr(self.transport, "redact", None)
        return redact(text) if callable(redact) else text

    def _redacted(self, error: LLMError) -> LLMError:
        """`error`, raised by a codec from what the provider sent, with its message and
        body redacted in place (its class and other fields kept, so callers see the same
        error). Callers raise it `from None`: a cause it carries may quote the raw text."""
        error.args = tuple(self._redact(a) if isinstance(a, str) else a for a in error.args)
        body = getattr(error, "body", None)
        if isinstance(body, str):
            error.body = self._redact(body)  # type: ignore[attr-defined]
        return error

    def _refuses(self, error: LLMHTTPError, mode: SchemaMode | None) -> bool:
        return mode is not None and self.codec.rejects_mode(error, mode)

    def _drop_mode(
        self, schema: Mapping[str, Any], name: str, mode: SchemaMode, error: LLMHTTPError
    ) -> None:
        if len(self._modes_for(schema)) == 1:
            raise LLMHTTPError(
                f"{self.codec.name} refused every structured-output mode for {self.model!r} "
                f"with schema {name}; the last, {mode!r}, with: {describe_exception(error)}",
                status=error.status,
                body=error.body,
            ) from error
        self._refused.setdefault(self._key(schema), set()).add(mode)

    # -- one request, with retries --------------------------------------------------------------

    async def _send(
        self, request: ProviderRequest, mode: SchemaMode | None, unit: Observation | None = None
    ) -> ProviderReply:
        attempt = 0
        while True:
            attempt += 1
            try:
                body = await self.transport.post_json(request.path, request.body)
                try:
                    reply = self.codec.parse_reply(body)
                except LLMError as exc:  # the codec's own (a refusal): it quotes the provider
                    raise self._redacted(exc) from None
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    raise LLMHTTPError(
                        self._redact(
                            f"{self.codec.name} answered 200 with a body it cannot read "
                            f"({describe_exception(exc)})"
                        ),
                        status=200,
                        body=self._redact(str(body))[:500],
                    ) from None  # the cause may quote the body unredacted; its text is above
            except (LLMHTTPError, LLMConnectionError, LLMTimeoutError) as exc:
                await self._wait_or_raise(exc, attempt, mode, unit)
                continue
            if request.reply_prefix:
                reply = dataclasses.replace(reply, text=request.reply_prefix + reply.text)
            return reply

    async def _wait_or_raise(
        self,
        exc: Exception,
        attempt: int,
        mode: SchemaMode | None,
        unit: Observation | None = None,
    ) -> None:
        retry_after = None
        if isinstance(exc, LLMHTTPError):
            # A refused mode (llama.cpp answers some with a 500) is not retried: the same
            # request gets the same answer; the caller steps down to the next mode instead.
            if not exc.retryable or self._refuses(exc, mode):
                raise exc
            retry_after = exc.retry_after_s
        delay = self.retry.delay_s(attempt, retry_after)
        if delay is None:
            raise exc
        # The message names provider, URL and status; transports keep secrets out of it.
        logger.info(
            "%s; retry %d of %d in %.2fs",
            describe_exception(exc),
            attempt,
            self.retry.max_retries,
            delay,
        )
        if unit is not None and unit.active:
            unit.attributes["retries"] = int(unit.attributes.get("retries", 0)) + 1
        await asyncio.sleep(delay)

    async def _stream(
        self,
        request: ProviderRequest,
        mode: SchemaMode | None,
        on_chunk: StreamCallback | None,
        on_reasoning: StreamCallback | None,
        unit: Observation | None = None,
    ) -> ProviderReply:
        attempt = 0
        while True:
            attempt += 1
            text: list[str] = []
            reasoning: list[str] = []
            try:
                reply = await self._read_stream(request, text, reasoning, on_chunk, on_reasoning)
            except (LLMHTTPError, LLMConnectionError, LLMTimeoutError, LLMStreamError) as exc:
                if text or reasoning:
                    # Chunks already went to the caller: a retry would repeat them.
                    partial = "".join(text)
                    raise LLMStreamError(
                        f"{self.codec.name} stream for {self.model!r} broke after "
                        f"{len(partial)} characters: {describe_exception(exc)}",
                        partial=partial,
                    ) from exc
                if isinstance(exc, LLMStreamError):
                    exc = LLMConnectionError(describe_exception(exc))
                await self._wait_or_raise(exc, attempt, mode, unit)
                continue
            await _call(on_chunk, "", True)
            return reply

    async def _read_stream(
        self,
        request: ProviderRequest,
        text: list[str],
        reasoning: list[str],
        on_chunk: StreamCallback | None,
        on_reasoning: StreamCallback | None,
    ) -> ProviderReply:
        usage: LLMUsage | None = None
        model: str | None = None
        finish_reason: str | None = None
        calls = _CallAssembler()
        prefix_sent = not request.reply_prefix
        async with self.transport.post_stream(request.path, request.body) as lines:
            async for event in iter_sse(lines):
                try:
                    delta = self.codec.parse_event(event)
                except LLMError as exc:  # the codec's own (an error event): quotes the provider
                    raise self._redacted(exc) from None
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    raise LLMStreamError(
                        self._redact(
                            f"{self.codec.name} sent a stream event it cannot read "
                            f"({describe_exception(exc)})"
                        )
                    ) from None  # the cause may quote the event unredacted; its text is above
                if delta is None:
                    continue
                pieces = [delta.text]
                if request.native_tools:
                    calls.add(delta.tool_calls)
                else:  # a codec's forced tool: its arguments are the reply's text
                    pieces += [call.arguments for call in delta.tool_calls]
                for piece in filter(None, pieces):
                    if not prefix_sent:
                        prefix_sent = True
                        text.append(request.reply_prefix)
                        await _call(on_chunk, request.reply_prefix, False)
                    text.append(piece)
                    await _call(on_chunk, piece, False)
                if delta.reasoning:
                    reasoning.append(delta.reasoning)
                    await _call(on_reasoning, delta.reasoning, False)
                usage = _merge_usage(usage, delta.usage)
                model = delta.model or model
                finish_reason = delta.finish_reason or finish_reason
                if delta.done:
                    return ProviderReply(
                        text="".join(text),
                        reasoning="".join(reasoning) or None,
                        usage=usage,
                        model=model,
                        finish_reason=finish_reason,
                        tool_calls=calls.finish(),
                    )
        raise LLMStreamError(
            f"{self.codec.name} stream ended before the end of the reply (connection closed early)",
            partial="".join(text),
        )


class _CallAssembler:
    """Streamed tool-call pieces put together by index, in the order calls started."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[list[str], list[str], list[str]]] = {}

    def add(self, deltas: Sequence[ToolCallDelta]) -> None:
        for delta in deltas:
            ids, names, arguments = self._calls.setdefault(delta.index, ([], [], []))
            if delta.id:
                ids[:] = [delta.id]
            if delta.name and not names:
                names.append(delta.name)
            arguments.append(delta.arguments)

    def finish(self) -> tuple[LLMToolCall, ...]:
        calls = []
        for index, (ids, names, arguments) in self._calls.items():
            if not names:
                raise LLMStreamError(
                    f"the stream sent arguments for tool call #{index} but never its name"
                )
            call_id = ids[0] if ids else f"call_{index}"
            calls.append(LLMToolCall.from_json(call_id, names[0], "".join(arguments)))
        return tuple(calls)


_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _merge_usage(known: LLMUsage | None, update: LLMUsage | None) -> LLMUsage | None:
    """Stream events report counts so far, some only input and some only output: keep the
    largest of each."""
    if update is None or known is None:
        return update or known
    return LLMUsage(**{f: max(getattr(known, f), getattr(update, f)) for f in _USAGE_FIELDS})


def _add_usage(total: LLMUsage, more: LLMUsage) -> LLMUsage:
    """Usage of several attempts (repair rounds) added up, cache counts included."""
    return LLMUsage(**{f: getattr(total, f) + getattr(more, f) for f in _USAGE_FIELDS})


async def _call(callback: Callable[[str, bool], Any] | None, piece: str, done: bool) -> None:
    if callback is None:
        return
    result = callback(piece, done)
    if inspect.isawaitable(result):
        await result
