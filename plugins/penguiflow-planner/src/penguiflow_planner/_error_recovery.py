"""What the planner does when the model call itself fails (PenguiFlow 3.11's error recovery).

The failure is classified (`classify_llm_error`), then:

- the prompt is over the model's context window: the large observations the model is shown
  are compressed (`_summarise.compress_observations`) and the call is tried again, at most
  `max_compress_retries` times, then the run ends with a polite answer;
- any other request the provider refused (a bad request): the run ends with a polite answer
  that says what the provider objected to, cleaned of keys and URLs (`provider_message`);
- rate limits, an unavailable service, timeouts and anything unrecognised: the error goes on as
  it is (the client's own retries have already run; the loop reports the failure).

Events, with PenguiFlow's names: `error_recovery_attempt`, `trajectory_compressed` (from the
compression), `error_recovery_success`, `error_recovery_failed`. They carry the cleaned message,
never the exception's own text (a provider's error body may quote a request header).
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from penguiflow.errors import describe_exception
from penguiflow.llm import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMHTTPError,
    LLMReplyError,
    LLMStreamError,
    LLMTimeoutError,
)

from ._actions import FINAL_RESPONSE, PlannerAction
from ._events import EmitFn
from ._summarise import compress_observations
from ._trajectory import Trajectory

__all__ = [
    "ErrorRecoveryConfig",
    "LLMErrorType",
    "classify_llm_error",
    "graceful_failure_action",
    "provider_message",
    "step_with_recovery",
]

logger = logging.getLogger("penguiflow.planner")


@dataclass
class ErrorRecoveryConfig:
    """How the planner recovers from a failed model call (PenguiFlow's fields and defaults).

    `max_compress_retries`: how many times a prompt over the context window is compressed and
    sent again. `compression_threshold_chars`: observations longer than this (as JSON) are
    the ones compressed. `summarize_on_compress`: compress them with the summariser model
    (else, or when it fails, they are clipped)."""

    enabled: bool = True
    max_compress_retries: int = 1
    compression_threshold_chars: int = 2000
    summarize_on_compress: bool = True


class LLMErrorType(Enum):
    """What kind of failure a model call ended in (PenguiFlow's classes and values)."""

    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    RATE_LIMIT = "rate_limit"
    SERVICE_UNAVAILABLE = "service_unavailable"
    TIMEOUT = "timeout"
    BAD_REQUEST_OTHER = "bad_request_other"
    UNKNOWN = "unknown"


#: how providers say the prompt is too long (PenguiFlow's list, lower case)
_CONTEXT_PHRASES: Final = (
    "input is too long",
    "context length",
    "maximum context",
    "token limit",
    "context_length_exceeded",
    "max_tokens",
    "too many tokens",
    "exceeds the model",
    # OpenAI-compatible servers (llama.cpp, vLLM) word it their own ways
    "context window",
    "exceeds the available context",
    "prompt is too long",
)


def _mentions_context_length(text: str) -> bool:
    lowered = text.lower()
    return any(phrase in lowered for phrase in _CONTEXT_PHRASES)


def _by_status(status: int, text: str) -> LLMErrorType:
    if status == 429:
        return LLMErrorType.RATE_LIMIT
    if status == 408:
        return LLMErrorType.TIMEOUT
    if status == 413 or (400 <= status < 500 and _mentions_context_length(text)):
        return LLMErrorType.CONTEXT_LENGTH_EXCEEDED
    if status >= 500 or status == 409:
        return LLMErrorType.SERVICE_UNAVAILABLE
    if status in (400, 422):
        return LLMErrorType.BAD_REQUEST_OTHER
    # 401, 403, 404: the key, the access or the model name is wrong. That is for whoever
    # deploys the agent to fix, not for a polite answer to the user to hide.
    return LLMErrorType.UNKNOWN


def classify_llm_error(exc: BaseException) -> LLMErrorType:
    """The kind of a model call's failure.

    Our clients' errors (`penguiflow.llm`) are classified by what they are: an HTTP error by
    its status (and, for a refused request, by whether the provider says the prompt is too
    long), a timeout, an unreachable or broken connection. Anything else (the SDK errors of a
    user's own client) by PenguiFlow's rules: the class name (`...Timeout...`,
    `...RateLimit...`, `...ServiceUnavailable...`/`...Server...`, `...BadRequest...`), what
    the message says about the context length, then a `status_code`/`status` attribute."""
    if isinstance(exc, LLMTimeoutError):
        return LLMErrorType.TIMEOUT
    if isinstance(exc, LLMHTTPError):
        return _by_status(exc.status, f"{describe_exception(exc)} {exc.body}")
    if isinstance(exc, LLMConnectionError | LLMStreamError):
        return LLMErrorType.SERVICE_UNAVAILABLE
    if isinstance(exc, LLMConfigurationError | LLMReplyError):
        return LLMErrorType.UNKNOWN
    name = type(exc).__name__
    text = describe_exception(exc)
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return LLMErrorType.TIMEOUT
    if "RateLimit" in name:
        return LLMErrorType.RATE_LIMIT
    if "ServiceUnavailable" in name or "Server" in name:
        return LLMErrorType.SERVICE_UNAVAILABLE
    if _mentions_context_length(text):
        return LLMErrorType.CONTEXT_LENGTH_EXCEEDED
    if "BadRequest" in name:
        return LLMErrorType.BAD_REQUEST_OTHER
    for attribute in ("status_code", "status"):
        status = getattr(exc, attribute, None)
        if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
            return _by_status(status, text)
    return LLMErrorType.UNKNOWN


# -- the provider's message, cleaned ----------------------------------------------------------

#: longest message given back
_MESSAGE_CHARS: Final = 300
#: longest error text parsed for its message
_PARSE_CHARS: Final = 20_000
_MESSAGE_KEYS: Final = ("message", "error", "detail", "error_description", "msg")
_QUOTED_MESSAGE = re.compile(r"""["']message["']\s*:\s*("(?:[^"\\]|\\.)*")""")
#: `litellm.BadRequestError: `, `BadRequestError: `, `Error code: 400 - `
_PREFIXES = re.compile(
    r"^\s*(?:(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception)\s*:\s*"
    r"|Error code:\s*\d+\s*-\s*)+"
)
#: `name: value` or `name=value` where the name is a credential's; the name is kept
_NAMED_SECRET = re.compile(
    r"""(?ix)\b((?:x-)?api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token
    |client[_-]?secret|secret|password|passwd|token|authorization|auth|key|signature|sig)
    (["']?\s*[:=]\s*["']?)([^\s"'&,;}]+)"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
#: keys with a known shape, and any other long opaque run of letters and digits
_SHAPED_SECRETS: Final = (
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"),
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{10,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}\b"),
)


def _mask_named(match: re.Match[str]) -> str:
    name, separator, value = match.group(1), match.group(2), match.group(3)
    # "Invalid key: the model..." is prose, "key=abc", "token: 'a1b2c3'" are values: a value
    # after `=`, or one with a digit or of some length, is taken for a secret
    if "=" in separator or any(c.isdigit() for c in value) or len(value) >= 16:
        return f"{name}{separator}***"
    return match.group(0)


_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^/\s@]*@)?([^\s?#'\"]*)(?:[?#][^\s'\"]*)?")


def _message_in(value: Any, depth: int = 0) -> str | None:
    """The innermost human message of a provider's error (a decoded JSON value)."""
    if depth > 5:
        return None
    if isinstance(value, str):
        inner = _parse_structured(value)
        if inner is not None:
            return _message_in(inner, depth + 1) or value
        return value
    if isinstance(value, Mapping):
        for key in _MESSAGE_KEYS:
            if key in value:
                found = _message_in(value[key], depth + 1)
                if found:
                    return found
    if isinstance(value, list) and value:
        return _message_in(value[0], depth + 1)
    return None


def _parse_structured(text: str) -> Any | None:
    """The JSON object (or Python literal, as SDKs print them) inside `text`, if any."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    candidate = text[start : end + 1]
    if len(candidate) > _PARSE_CHARS:  # a huge body: only its start is worth reading
        candidate = candidate[:_PARSE_CHARS]
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    try:
        return ast.literal_eval(candidate)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    # not parseable as a whole (cut): the first quoted "message" is the best we have
    quoted = _QUOTED_MESSAGE.search(candidate)
    if quoted is not None:
        try:
            return {"message": json.loads(quoted.group(1))}
        except ValueError:
            return None
    return None


def _redact(text: str) -> str:
    text = _URL.sub(lambda m: m.group(1) + m.group(2), text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    text = _NAMED_SECRET.sub(_mask_named, text)
    for pattern in _SHAPED_SECRETS:
        text = pattern.sub("***", text)
    return text


def provider_message(exc: BaseException) -> str:
    """A short text of what the provider said went wrong, for an answer a user reads: the
    innermost message of a (nested) JSON error body, without the exception class prefix,
    with URLs reduced to scheme, host and path, anything that looks like a credential
    replaced by `***`, on one line and at most 300 characters."""
    sources: list[str] = []
    if isinstance(exc, LLMHTTPError) and exc.body:
        sources.append(exc.body)
    sources.append(describe_exception(exc))
    text = ""
    for source in sources:
        structured = _parse_structured(source)
        found = _message_in(structured) if structured is not None else None
        if found:
            text = found
            break
    if not text:
        text = sources[-1]
    text = _PREFIXES.sub("", text)
    text = _redact(" ".join(text.split()))
    if not text:
        text = type(exc).__name__
    if len(text) > _MESSAGE_CHARS:
        text = text[: _MESSAGE_CHARS - 3].rstrip() + "..."
    return text


# -- the recovery loop ------------------------------------------------------------------------


def graceful_failure_action(exc: BaseException, error_type: LLMErrorType) -> PlannerAction:
    """A `final_response` that tells the user the request could not be completed and why
    (the cleaned provider message). `args["_recovery"]` records the kind of failure; it ends
    up in the final payload's `extra`, as in PenguiFlow."""
    reason = provider_message(exc)
    if error_type is LLMErrorType.CONTEXT_LENGTH_EXCEEDED:
        what = "the conversation grew too long for the model, even after shortening it"
    else:
        what = "the model provider refused the request"
    answer = (
        f"Sorry, I could not complete your request: {what} ({reason}). "
        "You could try again, perhaps with a shorter or simpler question."
    )
    return PlannerAction(
        next_node=FINAL_RESPONSE,
        args={
            "answer": answer,
            "raw_answer": answer,
            "_recovery": {"error_type": error_type.value, "message": reason},
        },
        thought=f"the model call failed ({error_type.value}); answering with an apology",
    )


async def step_with_recovery(
    step: Callable[[], Awaitable[PlannerAction]],
    trajectory: Trajectory,
    *,
    config: ErrorRecoveryConfig | None,
    client: Any | None,
    emit: EmitFn,
    record_cost: Callable[[float], None] | None = None,
) -> PlannerAction:
    """`await step()` (one decision of the model), recovering from its failure as this
    module's docstring says. `client` is the model that compresses observations (the
    summariser, else the planner's own; None: they are clipped). Errors that are not
    recovered from propagate unchanged; cancellation is never caught."""
    config = config or ErrorRecoveryConfig()
    if not config.enabled:
        return await step()
    compressions = 0
    while True:
        try:
            return await step()
        except Exception as exc:
            error_type = classify_llm_error(exc)
            message = provider_message(exc)
            await emit(
                "error_recovery_attempt",
                {"error_type": error_type.value, "error_message": message,
                 "compress_attempt": compressions},
            )  # fmt: skip
            if error_type is LLMErrorType.BAD_REQUEST_OTHER:
                await emit(
                    "error_recovery_success",
                    {"error_type": error_type.value, "strategy": "graceful_failure"},
                )
                return graceful_failure_action(exc, error_type)
            if error_type is not LLMErrorType.CONTEXT_LENGTH_EXCEEDED:
                raise
            failed: dict[str, Any] | None = None
            if compressions >= config.max_compress_retries:
                failed = {"reason": "max_compress_retries_exceeded"}
            else:
                compressions += 1
                try:
                    compressed = await compress_observations(
                        trajectory,
                        threshold_chars=config.compression_threshold_chars,
                        client=client,
                        summarise=config.summarize_on_compress,
                        emit=emit,
                        attempt=compressions,
                        record_cost=record_cost,
                    )
                except Exception as compress_exc:
                    logger.warning(
                        "compressing observations failed: %s", describe_exception(compress_exc)
                    )
                    failed = {
                        "reason": "compression_failed",
                        "compression_error": describe_exception(compress_exc)[:200],
                    }
                else:
                    if compressed == 0:
                        failed = {"reason": "nothing_to_compress"}
            if failed is None:
                continue  # the prompt is smaller now: ask again
            await emit("error_recovery_failed", {"error_type": error_type.value, **failed})
            return graceful_failure_action(exc, error_type)
