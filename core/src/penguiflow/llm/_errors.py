"""Errors of LLM clients: each says what failed and what to do about it.

    PenguiFlowError
    └── LLMError (also a RuntimeError)
        ├── LLMConfigurationError (also a ValueError): wrong setup, caught before any request
        ├── LLMHTTPError: the provider answered with an error status (`status`, `body`)
        ├── LLMConnectionError (also a ConnectionError): the provider could not be reached
        ├── LLMTimeoutError (also a TimeoutError): no answer within the timeout
        ├── LLMStreamError: a streamed reply stopped before its end (`partial`)
        └── LLMReplyError: the reply never matched the requested format (`text`, `errors`)
            └── LLMTruncationError: a structured reply was cut by `max_tokens` (no repair
                round is tried: the same limit would cut it again)

They live in the kernel, not in the HTTP toolkit that raises most of them, so code that calls
any `JSONLLMClient` catches the same classes whichever adapter is installed.
"""

from __future__ import annotations

from ..errors import PenguiFlowError

__all__ = [
    "LLMConfigurationError",
    "LLMConnectionError",
    "LLMError",
    "LLMHTTPError",
    "LLMReplyError",
    "LLMStreamError",
    "LLMTimeoutError",
    "LLMTruncationError",
]


class LLMError(PenguiFlowError, RuntimeError):
    """Base class of every error an LLM client raises on purpose."""


class LLMConfigurationError(LLMError, ValueError):
    """The client is set up wrongly (unknown model profile, missing credentials, bad option)."""


class LLMHTTPError(LLMError):
    """The provider answered with an error status; `body` is its (shortened) answer."""

    def __init__(
        self, message: str, *, status: int, body: str = "", retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Rate limits, overload and server errors are worth another attempt."""
        return self.status in RETRYABLE_STATUSES


#: 408 timeout, 409 conflict (OpenAI's "retry your request"), 429 rate limit, 5xx, 529 overload.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class LLMConnectionError(LLMError, ConnectionError):
    """The provider could not be reached (refused, reset, DNS)."""


class LLMTimeoutError(LLMError, TimeoutError):
    """The provider did not answer within the client's timeout."""


class LLMStreamError(LLMError):
    """A streamed reply stopped before its end; `partial` is the text received so far."""

    def __init__(self, message: str, *, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial


class LLMReplyError(LLMError):
    """The model's reply never matched the requested format, even after repair attempts.

    `text` is the last reply and `errors` the validation errors it had."""

    def __init__(self, message: str, *, text: str, errors: list[str]) -> None:
        super().__init__(message)
        self.text = text
        self.errors = errors


class LLMTruncationError(LLMReplyError):
    """A structured reply stopped at the token limit (`finish_reason` "length", Anthropic's
    `max_tokens`) before its JSON was complete.

    Raised at once, without repair rounds: asking again under the same limit is cut the same
    way. Raise `max_tokens` (or shorten what the schema asks for). `max_tokens` is the limit
    the request sent, when it sent one. A subclass of `LLMReplyError`, so code that handles
    unusable replies keeps catching it; a planner should end the step rather than repair."""

    def __init__(
        self, message: str, *, text: str, errors: list[str], max_tokens: int | None = None
    ) -> None:
        super().__init__(message, text=text, errors=errors)
        self.max_tokens = max_tokens
