"""Recovering from a failed model call (PenguiFlow 3.11's `ErrorRecoveryConfig`,
`LLMErrorType`, classification and graceful failure), with our `penguiflow.llm` errors and the
SDK-style errors of a user's own client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest
from penguiflow_planner._actions import PlannerAction
from penguiflow_planner._error_recovery import (
    ErrorRecoveryConfig,
    LLMErrorType,
    classify_llm_error,
    graceful_failure_action,
    provider_message,
    step_with_recovery,
)
from penguiflow_planner._trajectory import Trajectory, TrajectoryStep

from penguiflow.llm import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMHTTPError,
    LLMReplyError,
    LLMStreamError,
    LLMTimeoutError,
)

SECRET = "sk-proj-AbCdEf0123456789XyZ0123456789abcd"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None:
        self.events.append((event_type, dict(extra)))

    @property
    def types(self) -> list[str]:
        return [t for t, _ in self.events]


# SDK-style errors, named as the OpenAI, Anthropic and LiteLLM SDKs name theirs
class BadRequestError(Exception):
    pass


class APITimeoutError(Exception):
    pass


class InternalServerError(Exception):
    pass


class RateLimitError(Exception):
    pass


class ServiceUnavailableError(Exception):
    pass


class OverloadedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.status_code = 529


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def http_error(status: int, message: str, *, body: Any = None) -> LLMHTTPError:
    text = json.dumps(body) if body is not None else ""
    return LLMHTTPError(
        f"openai at http://127.0.0.1:9/v1/chat/completions answered {status}: {message}",
        status=status,
        body=text,
    )


def test_config_and_error_types_are_penguiflows() -> None:
    config = ErrorRecoveryConfig()
    assert (
        config.enabled,
        config.max_compress_retries,
        config.compression_threshold_chars,
        config.summarize_on_compress,
    ) == (True, 1, 2000, True)
    assert {t.name: t.value for t in LLMErrorType} == {
        "CONTEXT_LENGTH_EXCEEDED": "context_length_exceeded",
        "RATE_LIMIT": "rate_limit",
        "SERVICE_UNAVAILABLE": "service_unavailable",
        "TIMEOUT": "timeout",
        "BAD_REQUEST_OTHER": "bad_request_other",
        "UNKNOWN": "unknown",
    }


CONTEXT_BODY = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your "
        "messages resulted in 9000 tokens.",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
    }
}


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (http_error(429, "rate limited"), LLMErrorType.RATE_LIMIT),
        (http_error(408, "timeout"), LLMErrorType.TIMEOUT),
        (http_error(503, "the provider failed"), LLMErrorType.SERVICE_UNAVAILABLE),
        (http_error(529, "overloaded"), LLMErrorType.SERVICE_UNAVAILABLE),
        (http_error(400, "x", body=CONTEXT_BODY), LLMErrorType.CONTEXT_LENGTH_EXCEEDED),
        (http_error(413, "payload too large"), LLMErrorType.CONTEXT_LENGTH_EXCEEDED),
        (http_error(400, "unknown parameter 'foo'"), LLMErrorType.BAD_REQUEST_OTHER),
        (http_error(422, "invalid schema"), LLMErrorType.BAD_REQUEST_OTHER),
        (http_error(401, "invalid api key"), LLMErrorType.UNKNOWN),
        (http_error(404, "no such model"), LLMErrorType.UNKNOWN),
        (LLMTimeoutError("no answer within 30s"), LLMErrorType.TIMEOUT),
        (LLMConnectionError("refused"), LLMErrorType.SERVICE_UNAVAILABLE),
        (LLMStreamError("cut", partial="{"), LLMErrorType.SERVICE_UNAVAILABLE),
        (LLMReplyError("bad", text="x", errors=["e"]), LLMErrorType.UNKNOWN),
        (LLMConfigurationError("no key"), LLMErrorType.UNKNOWN),
        # PenguiFlow's rules, for a user's own client
        (BadRequestError("This model's maximum context length is 8192"), "context"),
        (BadRequestError("Input is too long for requested model."), "context"),
        (BadRequestError("invalid tool name"), LLMErrorType.BAD_REQUEST_OTHER),
        (APITimeoutError("Request timed out."), LLMErrorType.TIMEOUT),
        (TimeoutError(), LLMErrorType.TIMEOUT),
        (InternalServerError("boom"), LLMErrorType.SERVICE_UNAVAILABLE),
        (ServiceUnavailableError("later"), LLMErrorType.SERVICE_UNAVAILABLE),
        (RateLimitError("slow down"), LLMErrorType.RATE_LIMIT),
        (OverloadedError("Overloaded"), LLMErrorType.SERVICE_UNAVAILABLE),
        (ValueError("something else"), LLMErrorType.UNKNOWN),
        (Unprintable(), LLMErrorType.UNKNOWN),
    ],
)
def test_classification(exc: BaseException, expected: Any) -> None:
    if expected == "context":
        expected = LLMErrorType.CONTEXT_LENGTH_EXCEEDED
    assert classify_llm_error(exc) is expected


# -- the provider's message ----------------------------------------------------------------------


def test_provider_message_finds_the_innermost_message() -> None:
    # Databricks: JSON inside a JSON string, behind a LiteLLM prefix
    inner = json.dumps({"message": "Input is too long."})
    text = "litellm.BadRequestError: DatabricksException - " + json.dumps(
        {"error_code": "BAD_REQUEST", "message": inner}
    )
    assert provider_message(BadRequestError(text)) == "Input is too long."
    # the OpenAI SDK prints a Python dict
    sdk = BadRequestError(
        "Error code: 400 - {'error': {'message': \"Invalid 'tools[0].name': empty.\", "
        "'type': 'invalid_request_error'}}"
    )
    assert provider_message(sdk) == "Invalid 'tools[0].name': empty."
    # our HTTP error: the provider's body, not our framing of it
    error = http_error(400, "x", body=CONTEXT_BODY)
    assert provider_message(error).startswith("This model's maximum context length is 8192")
    # plain text: the class prefix goes
    assert provider_message(BadRequestError("BadRequestError: model is busy")) == "model is busy"


def test_provider_message_removes_secrets_and_urls() -> None:
    text = (
        f"Incorrect API key provided: {SECRET}. Authorization: Bearer {SECRET} at "
        "https://user:pw@api.example.com/v1/chat?key=AIzaSyA1234567890abcdefghijklmnopq&x=1 "
        "api_key=hunter2hunter2 token: 'abc123secret' id req_0123456789abcdef0123456789abcdef"
    )
    message = provider_message(BadRequestError(text))
    for leaked in (SECRET, "hunter2", "abc123secret", "AIza", "pw@", "x=1", "0123456789abcdef01"):
        assert leaked not in message, leaked
    assert "https://api.example.com/v1/chat" in message
    assert "***" in message
    # prose that merely names a key is left readable
    prose = "Invalid key: the model name is wrong; password reset. max_tokens: 100"
    assert provider_message(BadRequestError(prose)) == prose


def test_provider_message_is_short_and_never_fails() -> None:
    long = provider_message(BadRequestError("word " * 500))
    assert len(long) <= 300
    assert long.endswith("...")
    assert "\n" not in provider_message(BadRequestError("two\nlines"))
    assert provider_message(Unprintable())  # something, not an exception
    assert provider_message(ValueError("")) == "ValueError"


def test_graceful_failure_is_a_final_response_with_the_cleaned_message() -> None:
    exc = BadRequestError(f"Invalid value for 'temperature'. key={SECRET}")
    action = graceful_failure_action(exc, LLMErrorType.BAD_REQUEST_OTHER)
    assert action.is_finish
    assert action.args["answer"] == action.args["raw_answer"]
    assert "Invalid value for 'temperature'" in action.answer
    assert SECRET not in json.dumps(action.args)
    assert action.args["_recovery"]["error_type"] == "bad_request_other"


# -- the recovery loop ---------------------------------------------------------------------------


def big_trajectory() -> Trajectory:
    trajectory = Trajectory(query="q")
    trajectory.steps.append(
        TrajectoryStep(
            action=PlannerAction(next_node="search", args={"q": "x"}),
            observation={"text": "x" * 5000},
        )
    )
    return trajectory


class Step:
    """A model decision that fails as scripted, then answers."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> PlannerAction:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return PlannerAction(next_node="final_response", args={"answer": "ok"})


CONTEXT = http_error(400, "x", body=CONTEXT_BODY)


async def test_context_overflow_compresses_then_retries() -> None:
    trajectory = big_trajectory()
    recorder = Recorder()
    step = Step(CONTEXT)
    action = await step_with_recovery(
        step, trajectory, config=ErrorRecoveryConfig(summarize_on_compress=False),
        client=None, emit=recorder,
    )  # fmt: skip
    assert action.answer == "ok"
    assert step.calls == 2
    assert recorder.types == ["error_recovery_attempt", "trajectory_compressed"]
    attempt = recorder.events[0][1]
    assert attempt["error_type"] == "context_length_exceeded"
    assert attempt["compress_attempt"] == 0
    compressed = recorder.events[1][1]
    assert compressed["attempt"] == 1 and compressed["reason"] == "context_length"
    assert compressed["compressed_size_chars"] < compressed["original_size_chars"]
    assert trajectory.steps[0].observation == {"text": "x" * 5000}  # the record stays whole
    assert trajectory.steps[0].llm_observation["_compressed"] is True


async def test_context_overflow_gives_up_after_max_compress_retries() -> None:
    trajectory = big_trajectory()
    recorder = Recorder()
    step = Step(CONTEXT, CONTEXT, CONTEXT)
    action = await step_with_recovery(
        step, trajectory, config=ErrorRecoveryConfig(summarize_on_compress=False),
        client=None, emit=recorder,
    )  # fmt: skip
    assert step.calls == 2
    assert action.is_finish
    assert action.args["_recovery"]["error_type"] == "context_length_exceeded"
    assert recorder.events[-1] == (
        "error_recovery_failed",
        {"error_type": "context_length_exceeded", "reason": "max_compress_retries_exceeded"},
    )


async def test_context_overflow_with_nothing_to_compress_ends_gracefully() -> None:
    recorder = Recorder()
    action = await step_with_recovery(
        Step(CONTEXT), Trajectory(query="q"), config=None, client=None, emit=recorder
    )
    assert action.is_finish
    assert recorder.events[-1][1]["reason"] == "nothing_to_compress"


async def test_a_bad_request_becomes_an_answer() -> None:
    recorder = Recorder()
    exc = http_error(400, "x", body={"error": {"message": f"Unsupported parameter {SECRET}"}})
    action = await step_with_recovery(
        Step(exc), Trajectory(query="q"), config=None, client=None, emit=recorder
    )
    assert action.is_finish
    assert "Unsupported parameter" in action.answer
    assert recorder.types == ["error_recovery_attempt", "error_recovery_success"]
    assert recorder.events[1][1] == {
        "error_type": "bad_request_other",
        "strategy": "graceful_failure",
    }
    assert SECRET not in json.dumps(recorder.events)  # events carry the cleaned text only


@pytest.mark.parametrize(
    "exc", [http_error(429, "slow"), LLMTimeoutError("late"), http_error(401, "key"), KeyError("x")]
)
async def test_other_failures_go_on_unchanged(exc: BaseException) -> None:
    recorder = Recorder()
    with pytest.raises(type(exc)) as raised:
        await step_with_recovery(
            Step(exc), Trajectory(query="q"), config=None, client=None, emit=recorder
        )
    assert raised.value is exc
    assert recorder.types == ["error_recovery_attempt"]


async def test_disabled_recovery_lets_everything_through() -> None:
    recorder = Recorder()
    with pytest.raises(LLMHTTPError):
        await step_with_recovery(
            Step(CONTEXT), big_trajectory(), config=ErrorRecoveryConfig(enabled=False),
            client=None, emit=recorder,
        )  # fmt: skip
    assert recorder.events == []


async def test_cancellation_is_never_recovered_from() -> None:
    with pytest.raises(asyncio.CancelledError):
        await step_with_recovery(
            Step(asyncio.CancelledError()), big_trajectory(), config=None, client=None,
            emit=Recorder(),
        )  # fmt: skip


# -- a real provider error -----------------------------------------------------------------------


async def test_the_openai_client_s_real_context_error_is_recovered() -> None:
    """The error our OpenAI-compatible client raises for a real 400 from a server on
    127.0.0.1 is classified and cleaned as a provider's own words."""
    pytest.importorskip("penguiflow_openai")
    from penguiflow_llm_http import RetryPolicy
    from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
    from penguiflow_openai import OpenAIClient

    with ScriptedHTTPServer() as server:
        server.add(ScriptedResponse(status=400, body=CONTEXT_BODY))
        client = OpenAIClient(
            "gpt-4o-mini",
            base_url=server.url,
            api_key=SECRET,
            retry=RetryPolicy(max_retries=0, base_delay_s=0.01, max_delay_s=0.01),
        )
        try:
            with pytest.raises(Exception) as raised:
                await client.complete(messages=[{"role": "user", "content": "hi"}])
        finally:
            await client.aclose()
    assert classify_llm_error(raised.value) is LLMErrorType.CONTEXT_LENGTH_EXCEEDED
    message = provider_message(raised.value)
    assert message.startswith("This model's maximum context length is 8192 tokens.")
    assert SECRET not in message
