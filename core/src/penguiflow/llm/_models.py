"""Provider-neutral request and response models for JSON LLM clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, Field, ValidationError, model_validator

from ..errors import ConfigurationError
from ._tools import LLMImage, LLMToolCall

__all__ = [
    "FinishReason",
    "LLMMessage",
    "LLMResponse",
    "LLMRole",
    "LLMUsage",
    "ResponseFormat",
    "StreamCallback",
    "normalize_messages",
]

LLMRole: TypeAlias = Literal["system", "user", "assistant", "tool"]

#: None (free text), a Pydantic model class, or a JSON schema mapping.
ResponseFormat: TypeAlias = "type[BaseModel] | Mapping[str, Any] | None"

#: Called with each streamed piece of text and whether it is the last one (sync or async).
StreamCallback: TypeAlias = "Callable[[str, bool], Awaitable[None] | None]"


class LLMMessage(BaseModel):
    """One chat message; `tool` messages answer a tool call (`tool_call_id`).

    An assistant message may carry the `tool_calls` a reply asked for (its `content` may then
    be empty); a user message may carry `images`. A `tool` message whose `tool_call_id`
    answers one of those calls is sent as the API's native tool result; without one it is
    sent as user text naming the call, as before native tool calling existed."""

    role: LLMRole
    content: str
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[LLMToolCall] = Field(default_factory=list)
    images: list[LLMImage] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_parts(self) -> LLMMessage:
        if self.tool_calls and self.role != "assistant":
            raise ConfigurationError(
                f"tool_calls belong on assistant messages, not on {self.role!r} ones"
            )
        if self.images and self.role != "user":
            raise ConfigurationError(f"images belong on user messages, not on {self.role!r} ones")
        return self


class LLMUsage(BaseModel):
    """Token counts of one completion, when the provider reports them.

    `input_tokens` counts every prompt token, cached or not, so budgets see the whole prompt
    whichever provider answered (OpenAI's `prompt_tokens` already does; Anthropic reports
    cache reads and writes apart, and its adapter adds them in). The two cache counts are
    the parts of `input_tokens` read from and written to the provider's prompt cache, which
    are priced at other rates."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_input_tokens: int = Field(default=0, ge=0)
    cache_creation_input_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


#: Why the model stopped, in one vocabulary for every provider: `stop` (it finished),
#: `length` (cut by `max_tokens`), `tool_calls`, `content_filter`; another provider value is
#: kept as sent.
FinishReason: TypeAlias = str


class LLMResponse(BaseModel):
    """The reply text, plus usage, cost, model and finish reason when known.

    `finish_reason == "length"` means the reply was cut by the token limit: free text is
    returned as it is, a structured reply raises `LLMTruncationError` instead."""

    text: str
    usage: LLMUsage | None = None
    cost_usd: float | None = None
    model: str | None = None
    reasoning: str | None = None
    finish_reason: FinishReason | None = None
    #: calls the model asked for (with `tools=`); `finish_reason` is then "tool_calls"
    tool_calls: list[LLMToolCall] = Field(default_factory=list)

    def assistant_message(self) -> LLMMessage:
        """This reply as the assistant turn to append before the tool results."""
        return LLMMessage(role="assistant", content=self.text, tool_calls=list(self.tool_calls))


def normalize_messages(messages: Iterable[LLMMessage | Mapping[str, Any]]) -> list[LLMMessage]:
    """Accept `LLMMessage`s or `{"role": ..., "content": ...}` dicts; reject anything else
    with an error naming the message's position and the allowed roles."""
    normalized: list[LLMMessage] = []
    for index, message in enumerate(messages):
        if isinstance(message, LLMMessage):
            normalized.append(message)
            continue
        try:
            normalized.append(LLMMessage.model_validate(message))
        except ValidationError as exc:
            raise ConfigurationError(
                f"messages[{index}] is not a valid chat message ({exc.errors()[0]['msg']}): "
                "use {'role': 'system'|'user'|'assistant'|'tool', 'content': str}"
            ) from None
    if not normalized:
        raise ConfigurationError("messages is empty: send at least one message")
    return normalized
