"""`ProviderClient`: the provider-independent part of an HTTP LLM adapter.

An adapter supplies a `ProviderCodec` (how its API spells requests, replies and stream
events) and a `Transport` (how bytes move); this class does the rest the same way for every
provider: structured-output modes with a per-model fallback chain, reply validation with
repair attempts, retries with backoff, streaming with chunk and reasoning callbacks, usage
summed over attempts, and cost from a pricing table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
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
    LLMUsage,
    ResponseFormat,
    StreamCallback,
    normalize_messages,
    validate_reply,
)
from penguiflow.resources import AsyncResource

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
    "Transport",
]


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    path: str
    body: dict[str, Any]
    #: text the request already put in the model's mouth (a prefilled `{`); the reply
    #: continues it, so it is put back in front of the reply and of the stream
    reply_prefix: str = ""


@dataclass(frozen=True, slots=True)
class ProviderReply:
    text: str
    reasoning: str | None = None
    usage: LLMUsage | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """What one stream event adds; `done` marks the provider's end-of-reply event. `usage`
    holds the counts so far (the largest seen of each is kept)."""

    text: str = ""
    reasoning: str = ""
    usage: LLMUsage | None = None
    model: str | None = None
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
        """True when `error` says the provider or model does not support `mode`."""
        ...


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
        #: modes still believed to work for this model, best first
        self._modes: list[SchemaMode] = list(profile.schema_modes)
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, profile={self.profile.name!r})"

    @property
    def schema_mode(self) -> SchemaMode:
        """The structured-output mode the next request will use."""
        return self._modes[0]

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
    ) -> LLMResponse:
        """Send `messages`; with `response_format`, return JSON text that matches it.

        A reply that does not match is sent back to the model with its validation errors up
        to `max_repairs` times, then `LLMReplyError` is raised. Usage and cost add up every
        attempt. With `stream=True` each attempt's text goes to `on_stream_chunk` as it
        arrives and `(\"\", True)` ends it."""
        conversation = normalize_messages(messages)
        schema = schema_of(response_format)
        name = schema_name(response_format, schema) if schema is not None else "response"
        usage = LLMUsage()
        reported = False
        repairs = 0
        while True:
            mode = self._modes[0] if schema is not None else None
            request = self.codec.build_request(
                model=self.model,
                messages=conversation,
                mode=mode,
                schema=schema,
                schema_name=name,
                stream=stream,
                options=self.options,
            )
            try:
                if stream:
                    reply = await self._stream(request, on_stream_chunk, on_reasoning_chunk)
                else:
                    reply = await self._send(request)
            except LLMHTTPError as exc:
                if mode is not None and self.codec.rejects_mode(exc, mode):
                    self._drop_mode(mode, exc)
                    logger.info(
                        "%s refused structured-output mode %r for %r; using %r from now on",
                        self.codec.name,
                        mode,
                        self.model,
                        self._modes[0],
                    )
                    continue
                raise
            if reply.usage is not None:
                reported = True
                usage = LLMUsage(
                    input_tokens=usage.input_tokens + reply.usage.input_tokens,
                    output_tokens=usage.output_tokens + reply.usage.output_tokens,
                )
            text, errors = validate_reply(reply.text, response_format)
            if not errors:
                model = reply.model or self.model
                total = usage if reported else None
                return LLMResponse(
                    text=text,
                    usage=total,
                    cost_usd=self.pricing.cost(model, total),
                    model=model,
                    reasoning=reply.reasoning,
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
            conversation = [
                *conversation,
                LLMMessage(role="assistant", content=reply.text),
                LLMMessage(role="user", content=repair_instructions(errors, schema)),
            ]

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

    def _drop_mode(self, mode: SchemaMode, error: LLMHTTPError) -> None:
        if len(self._modes) == 1:
            raise LLMHTTPError(
                f"{self.codec.name} refused every structured-output mode for {self.model!r}; "
                f"the last, {mode!r}, with: {describe_exception(error)}",
                status=error.status,
                body=error.body,
            ) from error
        self._modes.remove(mode)

    # -- one request, with retries --------------------------------------------------------------

    async def _send(self, request: ProviderRequest) -> ProviderReply:
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
                await self._wait_or_raise(exc, attempt)
                continue
            if request.reply_prefix:
                reply = dataclasses.replace(reply, text=request.reply_prefix + reply.text)
            return reply

    async def _wait_or_raise(self, exc: Exception, attempt: int) -> None:
        retry_after = None
        if isinstance(exc, LLMHTTPError):
            if not exc.retryable:
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
        await asyncio.sleep(delay)

    async def _stream(
        self,
        request: ProviderRequest,
        on_chunk: StreamCallback | None,
        on_reasoning: StreamCallback | None,
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
                await self._wait_or_raise(exc, attempt)
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
                if delta.text:
                    if not prefix_sent:
                        prefix_sent = True
                        text.append(request.reply_prefix)
                        await _call(on_chunk, request.reply_prefix, False)
                    text.append(delta.text)
                    await _call(on_chunk, delta.text, False)
                if delta.reasoning:
                    reasoning.append(delta.reasoning)
                    await _call(on_reasoning, delta.reasoning, False)
                usage = _merge_usage(usage, delta.usage)
                model = delta.model or model
                if delta.done:
                    return ProviderReply(
                        text="".join(text),
                        reasoning="".join(reasoning) or None,
                        usage=usage,
                        model=model,
                    )
        raise LLMStreamError(
            f"{self.codec.name} stream ended before the end of the reply (connection closed early)",
            partial="".join(text),
        )


def _merge_usage(known: LLMUsage | None, update: LLMUsage | None) -> LLMUsage | None:
    """Stream events report counts so far, some only input and some only output: keep the
    largest of each."""
    if update is None or known is None:
        return update or known
    return LLMUsage(
        input_tokens=max(known.input_tokens, update.input_tokens),
        output_tokens=max(known.output_tokens, update.output_tokens),
    )


async def _call(callback: Callable[[str, bool], Any] | None, piece: str, done: bool) -> None:
    if callback is None:
        return
    result = callback(piece, done)
    if inspect.isawaitable(result):
        await result
