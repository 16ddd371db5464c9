"""Calling the planner's model through any client: PenguiFlow's `JSONLLMClient`s and ours.

A PenguiFlow client is the user's own class with `complete(*, messages, response_format=None,
stream=False, on_stream_chunk=None)` returning the reply text, or `(text, cost_usd)`; ours
(`penguiflow.llm.JSONLLMClient`, e.g. `OpenAIClient`) return an `LLMResponse`. `call_client`
tells them apart by what `complete` returns, never by a flag, and gives the loop one
`LLMReply` either way.

What it smooths over, once per client (remembered for the client's lifetime, logged once):
- a client whose `complete` has no `response_format` (or `stream`) keyword is called without it
  from then on (the planner then relies on its prompt and parser alone);
- one of ours refusing the schema (`LLMConfigurationError`) is called without it, when that
  call works;
- the request's shape: PenguiFlow clients get PenguiFlow's OpenAI-style `response_format`
  (`{"type": "json_schema", "json_schema": {...}}`), ours the JSON schema inside it (their
  `ResponseFormat`), with the schema's name as its title.

`timeout_s` and `max_retries` are PenguiFlow's `llm_timeout_s` and `llm_max_retries`, with
PenguiFlow's meaning: a bound on each call, and the number of *attempts* (3 means up to three
calls; 0 and 1 both mean one). Like PenguiFlow's adapters, a call is retried after a timeout, a
rate limit, an overloaded or failing server or a dropped connection, waiting 1, 2, 4... seconds
(at most 30) or what the provider's `Retry-After` says (up to 60 s; a longer wait is not made,
the error is raised). PenguiFlow applies these only to the clients it builds from `llm=`; we
apply them to every client, so a user's client also survives a transient error. The run's own
deadline is a cancel scope around the whole call: its cancellation is never caught here.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import re
import weakref
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from pydantic import BaseModel

from penguiflow.errors import ConfigurationError, describe_exception
from penguiflow.llm import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMMessage,
    LLMReplyError,
    LLMResponse,
    LLMTimeoutError,
    LLMTruncationError,
    LLMUsage,
)

from ._llm_resolve import resolve_llm

__all__ = [
    "LLMReply",
    "LLMReplyTypeError",
    "StreamChunkCallback",
    "call_client",
    "client_expects_json_schema",
    "resolve_llm",
]

logger = logging.getLogger("penguiflow.planner")

#: Called with each piece of streamed text and whether it is the last; sync or async.
StreamChunkCallback = Callable[[str, bool], Awaitable[None] | None]
Sleep = Callable[[float], Awaitable[Any]]

#: PenguiFlow's first backoff is 1 s, doubling; we cap it where its retry helper does.
_MAX_BACKOFF_S = 30.0
#: A provider asking for a longer wait than this is not waited for (the error is raised).
_MAX_RETRY_AFTER_S = 60.0
_OPTIONAL_KEYWORDS = ("response_format", "stream", "on_stream_chunk")
_UNEXPECTED_KEYWORD = re.compile(r"unexpected keyword argument '(\w+)'")
#: Exception class names that mean "try again" for clients outside our error tree (OpenAI's
#: and Anthropic's SDKs, LiteLLM): PenguiFlow's LiteLLM path looks at names the same way.
_TRANSIENT_NAMES = (
    "RateLimit",
    "ServiceUnavailable",
    "Overloaded",
    "Timeout",
    "APIConnection",
    "InternalServerError",
)


@dataclass(frozen=True)
class LLMReply:
    """One reply of the model: its text, its cost in USD (0.0 when unknown) and its token
    counts when the client reports them."""

    text: str
    cost_usd: float = 0.0
    usage: LLMUsage | None = None


class LLMReplyTypeError(LLMError, TypeError):
    """A client's `complete` returned something that is not a reply (PenguiFlow raises a
    `TypeError` here too)."""


def client_expects_json_schema(client: Any) -> bool:
    """Whether `client` asks for the action schema even when `json_schema_mode` is off: a
    client class may say `expects_json_schema = True`, as PenguiFlow's DSPy client does."""
    try:
        return getattr(client, "expects_json_schema", False) is True
    except Exception:  # a property that raises says nothing
        return False


async def call_client(
    client: Any,
    messages: Sequence[Mapping[str, str] | LLMMessage],
    *,
    response_format: Mapping[str, Any] | type[BaseModel] | None = None,
    stream: bool = False,
    on_stream_chunk: StreamChunkCallback | None = None,
    timeout_s: float | None = None,
    max_retries: int = 0,
    sleep: Sleep = anyio.sleep,
) -> LLMReply:
    """Ask `client` for one reply to `messages`, as described in the module's docstring.

    With `stream=True` and `on_stream_chunk`, the callback receives the text as the client
    streams it and always exactly one final call with `done=True` (the whole text in one
    piece when the client did not stream). A client that calls the callback without awaiting
    what it returns (PenguiFlow's clients do) gets an async callback's pieces delivered, in
    order, when its call returns. `sleep` waits between attempts (a fake clock in tests)."""
    if timeout_s is not None and not timeout_s > 0:
        raise ConfigurationError(f"timeout_s must be > 0 seconds or None, got {timeout_s!r}")
    plain = _plain_messages(messages)
    attempts = max(1, int(max_retries))
    quirks = _MEMO.quirks_of(client)
    attempt = 1
    while True:
        relay = _Relay(on_stream_chunk if stream else None)
        try:
            reply = await _attempt(client, plain, response_format, stream, relay, quirks, timeout_s)
        except Exception as exc:
            delay = _retry_delay(exc, attempt, attempts, relay)
            if delay is None:
                raise
            logger.warning(
                "the model call failed (attempt %d of %d: %s: %s); trying again in %.1f s",
                attempt,
                attempts,
                type(exc).__name__,
                describe_exception(exc),
                delay,
            )
            attempt += 1
            await sleep(delay)
            continue
        await relay.finish(reply.text)
        return reply


# -- one attempt ------------------------------------------------------------------------------


async def _attempt(
    client: Any,
    messages: list[dict[str, str]],
    response_format: Mapping[str, Any] | type[BaseModel] | None,
    stream: bool,
    relay: _Relay,
    quirks: _Quirks,
    timeout_s: float | None,
) -> LLMReply:
    with anyio.move_on_after(timeout_s) as scope:
        return await _complete(client, messages, response_format, stream, relay, quirks)
    # Only our own deadline lands here; the run's deadline (an outer scope) propagates.
    assert scope.cancelled_caught
    raise LLMTimeoutError(
        f"{_name(client)} did not answer within {timeout_s:g} s; raise llm_timeout_s, or check "
        "that the model server is up and not overloaded"
    )


async def _complete(
    client: Any,
    messages: list[dict[str, str]],
    response_format: Mapping[str, Any] | type[BaseModel] | None,
    stream: bool,
    relay: _Relay,
    quirks: _Quirks,
) -> LLMReply:
    refused: LLMConfigurationError | None = None  # the schema's refusal, while on trial
    while True:
        kwargs: dict[str, Any] = {"messages": [dict(m) for m in messages]}
        if "response_format" not in quirks.dropped:
            kwargs["response_format"] = _request_format(response_format, quirks.guess(client))
        if "stream" not in quirks.dropped:
            kwargs["stream"] = stream
            kwargs["on_stream_chunk"] = relay.callback if stream and relay.active else None
        try:
            raw = await client.complete(**kwargs)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                relay.discard()  # cancelled: nothing more is delivered
                raise
            await relay.flush()
            if refused is not None:
                # The call without the schema failed too: the schema was not the problem.
                quirks.dropped.discard("response_format")
                raise
            if isinstance(exc, TypeError) and (keyword := _refused_keyword(exc, kwargs)):
                quirks.drop(client, keyword)
                continue
            if isinstance(exc, LLMConfigurationError) and kwargs.get("response_format"):
                # Maybe the schema, maybe something else (credentials): one call without the
                # schema tells; only when it works is the client remembered as schema-less.
                refused = exc
                quirks.dropped.add("response_format")
                continue
            if isinstance(exc, LLMReplyError) and not isinstance(exc, LLMTruncationError):
                # One of ours gave up repairing a reply against the schema: the planner has
                # its own repair round, with better errors, so the text is what it needs.
                # A reply cut by max_tokens is not repaired: asked again under the same
                # limit, it is cut the same way; the error (naming max_tokens) ends the step.
                quirks.kind = "ours"
                return LLMReply(text=exc.text)
            raise
        await relay.flush()
        if refused is not None:
            quirks.log_once(client, "response_format", describe_exception(refused))
        return _coerce(client, raw, quirks)


def _refused_keyword(exc: TypeError, kwargs: Mapping[str, Any]) -> str | None:
    """The optional keyword a `TypeError` says `complete` does not take, if that is what it
    says (any other `TypeError` is the client's own)."""
    match = _UNEXPECTED_KEYWORD.search(describe_exception(exc))
    if match is None or match.group(1) not in _OPTIONAL_KEYWORDS or match.group(1) not in kwargs:
        return None
    return match.group(1)


def _coerce(client: Any, raw: Any, quirks: _Quirks) -> LLMReply:
    if isinstance(raw, LLMResponse):
        quirks.kind = "ours"
        cost = raw.cost_usd if raw.cost_usd is not None else 0.0
        return LLMReply(text=raw.text, cost_usd=_cost(client, cost), usage=raw.usage)
    if isinstance(raw, str):
        quirks.kind = "penguiflow"
        return LLMReply(text=raw)
    if isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[0], str):
        quirks.kind = "penguiflow"
        return LLMReply(text=raw[0], cost_usd=_cost(client, raw[1]))
    raise LLMReplyTypeError(
        f"{_name(client)}.complete() returned {_describe(raw)}; a planner client must return "
        "the reply text (str), a (text, cost_usd) tuple, or a penguiflow.llm.LLMResponse"
    )


def _cost(client: Any, value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LLMReplyTypeError(
            f"{_name(client)}.complete() returned a cost of {_describe(value)}; the cost must "
            "be a number of USD (0.0 when unknown)"
        )
    cost = float(value)
    if not math.isfinite(cost) or cost < 0:
        raise LLMReplyTypeError(
            f"{_name(client)}.complete() returned a cost of {cost!r} USD; the cost must be a "
            "finite number >= 0 (0.0 when unknown)"
        )
    return cost


# -- the request's shape ----------------------------------------------------------------------


def _plain_messages(messages: Sequence[Mapping[str, str] | LLMMessage]) -> list[dict[str, str]]:
    """`{"role", "content"}` dicts, which every client understands (PenguiFlow's expect
    exactly that)."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise ConfigurationError(
            f"messages must be a list of {{'role', 'content'}} dicts, got {_describe(messages)}"
        )
    plain: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        if isinstance(message, LLMMessage):
            plain.append({"role": message.role, "content": message.content})
            continue
        if not isinstance(message, Mapping):
            raise ConfigurationError(
                f"messages[{index}] is {_describe(message)}; each message is a "
                "{'role': ..., 'content': ...} dict"
            )
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise ConfigurationError(
                f"messages[{index}] needs a text 'role' and a text 'content' "
                f"(got keys {sorted(map(str, message))})"
            )
        plain.append({"role": role, "content": content})
    if not plain:
        raise ConfigurationError("messages is empty: send at least one message")
    return plain


def _request_format(
    response_format: Mapping[str, Any] | type[BaseModel] | None, kind: _Kind
) -> Any:
    """`response_format` in the form the client reads: PenguiFlow's OpenAI-style mapping for
    PenguiFlow clients, our `ResponseFormat` (a schema or a model class) for ours."""
    if response_format is None:
        return None
    if isinstance(response_format, type) and issubclass(response_format, BaseModel):
        if kind == "ours":
            return response_format
        schema = response_format.model_json_schema()
        return {
            "type": "json_schema",
            "json_schema": {"name": response_format.__name__, "schema": schema},
        }
    if not isinstance(response_format, Mapping):
        raise ConfigurationError(
            "response_format must be None, a Pydantic model class, PenguiFlow's "
            "{'type': 'json_schema', 'json_schema': {...}} or a JSON schema; got "
            f"{_describe(response_format)}"
        )
    wrapper = response_format.get("type") in ("json_schema", "json_object", "text")
    if kind == "penguiflow":
        if wrapper:
            return dict(response_format)
        name = str(response_format.get("title") or "response")
        return {"type": "json_schema", "json_schema": {"name": name, "schema": response_format}}
    if not wrapper:
        return dict(response_format)
    if response_format["type"] == "text":
        return None
    if response_format["type"] == "json_object":
        return {"type": "object"}
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
        raise ConfigurationError(
            "a json_schema response_format needs {'json_schema': {'name': ..., 'schema': {...}}}"
        )
    schema = dict(spec["schema"])
    if "title" not in schema and spec.get("name"):
        schema["title"] = str(spec["name"])  # our adapters name the schema after its title
    return schema


# -- retries ----------------------------------------------------------------------------------


def _retry_delay(exc: Exception, attempt: int, attempts: int, relay: _Relay) -> float | None:
    """Seconds to wait before the next attempt, or None to raise `exc` now."""
    if attempt >= attempts or relay.delivered or not _transient(exc):
        # Text already streamed to the caller cannot be taken back: no retry after it.
        return None
    retry_after = _retry_after(exc)
    if retry_after is not None:
        return retry_after if retry_after <= _MAX_RETRY_AFTER_S else None
    return float(min(2.0 ** (attempt - 1), _MAX_BACKOFF_S))


def _transient(exc: Exception) -> bool:
    if isinstance(exc, LLMHTTPError):
        return exc.retryable
    if isinstance(exc, LLMTimeoutError | LLMConnectionError):
        return True
    if isinstance(exc, LLMError):
        return False  # a setup error, a reply that never fit, a broken stream: same next time
    try:
        flag = getattr(exc, "retryable", None)  # PenguiFlow's own LLM errors carry this
    except Exception:
        flag = None
    if isinstance(flag, bool):
        return flag
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    return any(marker in type(exc).__name__ for marker in _TRANSIENT_NAMES)


def _retry_after(exc: Exception) -> float | None:
    for attribute in ("retry_after_s", "retry_after"):
        try:
            value = getattr(exc, attribute, None)
        except Exception:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


# -- streaming --------------------------------------------------------------------------------


class _Relay:
    """Hands the client a callback that works whether the client awaits it (ours) or not
    (PenguiFlow's), for a sync or an async `on_stream_chunk`, and keeps the pieces in order."""

    def __init__(self, target: StreamChunkCallback | None) -> None:
        self.target = target
        self.delivered = False  # some text reached the caller
        self._done = False
        self._pending: list[_Delivery] = []
        self._broken = False

    @property
    def active(self) -> bool:
        return self.target is not None

    def callback(self, text: str, done: bool) -> Awaitable[None] | None:
        if self.target is None:
            return None
        self.delivered = self.delivered or bool(text)
        self._done = self._done or bool(done)
        delivery = _Delivery(self, str(text), bool(done))
        if inspect.iscoroutinefunction(self.target):
            self._pending.append(delivery)
            return delivery
        result = self._call(str(text), bool(done))
        if result is not None:
            delivery.awaitable = result
            self._pending.append(delivery)
            return delivery
        return None

    def _call(self, text: str, done: bool) -> Awaitable[Any] | None:
        assert self.target is not None
        try:
            result = self.target(text, done)
        except Exception as exc:
            self._report(exc)
            return None
        return result if inspect.isawaitable(result) else None

    async def flush(self) -> None:
        """Deliver what the client handed over without awaiting it."""
        while self._pending:
            await self._pending[0]

    def discard(self) -> None:
        """Drop what was not delivered (the call was cancelled), closing coroutines that
        will never run so that they are not reported as never awaited."""
        for delivery in self._pending:
            close = getattr(delivery.awaitable, "close", None)
            if callable(close):
                close()
        self._pending.clear()

    async def finish(self, text: str) -> None:
        """The one `done=True` call every stream ends with."""
        if self.target is None or self._done:
            return
        self._done = True
        result = self._call("" if self.delivered else text, True)
        if result is not None:
            await self._guarded(result)

    async def _guarded(self, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception as exc:
            self._report(exc)

    def _report(self, exc: Exception) -> None:
        # A failing observer must not fail the model call (PenguiFlow logs and goes on too).
        if not self._broken:
            self._broken = True
            logger.error("on_stream_chunk raised; the stream goes on without it", exc_info=exc)


@dataclass
class _Delivery:
    """One piece for an async callback, run when the client awaits it or at the flush."""

    relay: _Relay
    text: str
    done: bool
    awaitable: Awaitable[Any] | None = None
    ran: bool = False

    def __await__(self) -> Generator[Any, None, None]:
        return self._run().__await__()

    async def _run(self) -> None:
        if self.ran:
            return
        self.ran = True
        pending = self.relay._pending
        # Pieces handed over earlier but not awaited go first, so the order holds.
        while pending and pending[0] is not self:
            await pending[0]
        if pending and pending[0] is self:
            pending.pop(0)
        awaitable = self.awaitable
        if awaitable is None:
            awaitable = self.relay._call(self.text, self.done)
        if awaitable is not None:
            await self.relay._guarded(awaitable)


# -- what is remembered about each client -----------------------------------------------------

_Kind = Literal["ours", "penguiflow"]


@dataclass
class _Quirks:
    #: what the client's replies showed it to be; None until its first reply
    kind: _Kind | None = None
    #: optional keywords its `complete` refused
    dropped: set[str] = field(default_factory=set)
    logged: set[str] = field(default_factory=set)

    def guess(self, client: Any) -> _Kind:
        if self.kind is not None:
            return self.kind
        # Before the first reply: trust what `complete` says it returns; a subclass that
        # overrides it without an annotation (a wrapper of OpenAIClient, say) is read through
        # the classes it derives from, nearest first.
        for owner in type(client).__mro__:
            method = vars(owner).get("complete")
            if method is None:
                continue
            returns = getattr(method, "__annotations__", {}).get("return")
            if returns is None:
                continue
            text = returns if isinstance(returns, str) else getattr(returns, "__name__", "")
            return "ours" if "LLMResponse" in str(text) else "penguiflow"
        try:
            returns = inspect.signature(client.complete).return_annotation
        except (TypeError, ValueError, AttributeError):
            return "penguiflow"
        text = returns if isinstance(returns, str) else getattr(returns, "__name__", "")
        return "ours" if "LLMResponse" in str(text) else "penguiflow"

    def drop(self, client: Any, keyword: str) -> None:
        dropped = {"stream", "on_stream_chunk"} if keyword != "response_format" else {keyword}
        self.dropped |= dropped
        self.log_once(client, keyword, f"complete() takes no {keyword!r} keyword")

    def log_once(self, client: Any, keyword: str, why: str) -> None:
        if keyword in self.logged:
            return
        self.logged.add(keyword)
        if keyword == "response_format":
            logger.warning(
                "%s refused the action schema (%s); calling it without response_format from "
                "now on: the planner relies on its prompt and parser for this client",
                _name(client),
                why,
            )
        else:
            logger.warning("%s: %s; calling it without streaming from now on", _name(client), why)


class _ClientMemo:
    """`_Quirks` per client object, forgotten when the client is collected. Keyed by identity
    (a client need not be hashable); a client that cannot be weakly referenced is not
    remembered (it is asked afresh each call, which costs a refused call, not a leak)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Any], _Quirks]] = {}

    def quirks_of(self, client: Any) -> _Quirks:
        key = id(client)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is client:
            return entry[1]
        quirks = _Quirks()
        try:
            ref = weakref.ref(client, functools.partial(self._forget, key))
        except TypeError:
            return quirks
        self._entries[key] = (ref, quirks)
        return quirks

    def _forget(self, key: int, dead: weakref.ref[Any]) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] is dead:
            del self._entries[key]


_MEMO = _ClientMemo()


def _name(client: Any) -> str:
    return type(client).__qualname__


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = "<unprintable>"
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"
