"""`ScriptedLLMClient`: an in-memory JSON LLM client that replies from a script (for tests)."""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import BaseModel

from ..errors import ConfigurationError, InvalidTypeError, PenguiFlowError
from ..resources import AsyncResource
from ._models import (
    LLMMessage,
    LLMResponse,
    LLMUsage,
    ResponseFormat,
    StreamCallback,
    normalize_messages,
)

__all__ = ["ScriptExhaustedError", "ScriptedCall", "ScriptedLLMClient", "ScriptedReply"]

#: A reply: text, a JSON-able mapping or model (sent as JSON), an exception (raised), or a
#: callable computing one of those from the messages.
ScriptedReply: TypeAlias = (
    "str | Mapping[str, Any] | BaseModel | BaseException | Callable[[list[LLMMessage]], Any]"
)


class ScriptExhaustedError(PenguiFlowError, RuntimeError):
    """The client was called more often than its script has replies."""


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    messages: list[LLMMessage]
    response_format: ResponseFormat
    stream: bool


class ScriptedLLMClient(AsyncResource):
    """Replies in order from `replies`; records every call in `calls`."""

    def __init__(
        self, replies: Iterable[ScriptedReply] = (), *, model: str = "scripted", chunk_size: int = 8
    ) -> None:
        if chunk_size < 1:
            raise ConfigurationError(f"chunk_size must be >= 1 (got {chunk_size})")
        self._replies: deque[ScriptedReply] = deque(replies)
        self.model = model
        self.chunk_size = chunk_size
        self.calls: list[ScriptedCall] = []

    def add(self, *replies: ScriptedReply) -> None:
        self._replies.extend(replies)

    @property
    def remaining(self) -> int:
        return len(self._replies)

    async def complete(
        self,
        *,
        messages: Sequence[LLMMessage | Mapping[str, Any]],
        response_format: ResponseFormat = None,
        stream: bool = False,
        on_stream_chunk: StreamCallback | None = None,
    ) -> LLMResponse:
        from ..observability import observe

        # An `llm.call` event like the HTTP adapters' (GenAI attributes), so traces and
        # metrics of a run on the scripted client look like a real one's.
        attributes = {
            "gen_ai.system": "scripted",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": self.model,
            "stream": stream,
        }
        async with observe("llm", "call", attributes=attributes) as unit:
            response = await self._reply(messages, response_format, stream, on_stream_chunk)
            if unit.active:
                unit.attributes["gen_ai.response.model"] = response.model
                finish = response.finish_reason or "stop"
                unit.attributes["gen_ai.response.finish_reasons"] = (finish,)
                if response.usage is not None:
                    unit.measurements["input_tokens"] = float(response.usage.input_tokens)
                    unit.measurements["output_tokens"] = float(response.usage.output_tokens)
                unit.measurements["cost_usd"] = 0.0
            return response

    async def _reply(
        self,
        messages: Sequence[LLMMessage | Mapping[str, Any]],
        response_format: ResponseFormat,
        stream: bool,
        on_stream_chunk: StreamCallback | None,
    ) -> LLMResponse:
        normalized = normalize_messages(messages)
        self.calls.append(ScriptedCall(normalized, response_format, stream))
        if not self._replies:
            raise ScriptExhaustedError(
                f"ScriptedLLMClient ran out of replies after {len(self.calls) - 1} call(s); "
                "add more with client.add(...)"
            )
        reply: Any = self._replies.popleft()
        if callable(reply) and not isinstance(reply, BaseModel | BaseException):
            reply = reply(normalized)
            if inspect.isawaitable(reply):
                reply = await reply
        if isinstance(reply, BaseException):
            raise reply
        text = _as_text(reply)
        if stream and on_stream_chunk is not None:
            pieces = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
            for index, piece in enumerate(pieces or [""]):
                result = on_stream_chunk(piece, index == max(len(pieces) - 1, 0))
                if inspect.isawaitable(result):
                    await result
        prompt_chars = sum(len(m.content) for m in normalized)
        usage = LLMUsage(input_tokens=prompt_chars // 4, output_tokens=len(text) // 4)
        return LLMResponse(text=text, usage=usage, cost_usd=0.0, model=self.model)

    async def aclose(self) -> None:
        """Nothing to release; here so every resource closes the same way (`async with`)."""


def _as_text(reply: Any) -> str:
    if isinstance(reply, str):
        return reply
    if isinstance(reply, BaseModel):
        return reply.model_dump_json()
    if isinstance(reply, Mapping):
        return json.dumps(reply)
    raise InvalidTypeError(
        f"scripted reply {reply!r} is not text, a mapping, a model or an exception"
    )
