"""The refusal classifier against providers' real wordings (quoted in the adapters' tests)."""

from __future__ import annotations

import pytest
from penguiflow_llm_http import is_mode_refusal

from penguiflow.llm import LLMHTTPError


def error(status: int, body: str) -> LLMHTTPError:
    return LLMHTTPError(f"server answered {status}", status=status, body=body)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, '{"error":{"code":400,"message":"JSON schema conversion failed:\\nUnrecognized'),
        (500, 'response_format type must be one of \\"text\\" or \\"json_object\\"'),
        (400, "The provided JSON schema contains features not supported by xgrammar."),
        (400, "Invalid schema for response_format 'Answer': In context=(), ..."),
        (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported"),
        (422, '{"detail":"guided_json is not supported"}'),
    ],
)
def test_refusals_are_recognised(status: int, body: str) -> None:
    assert is_mode_refusal(error(status, body), "json_schema")
    assert not is_mode_refusal(error(status, body), "prompt")  # nothing left to refuse


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "The model `gpt-5-nope` does not exist"),
        (401, "Incorrect API key provided"),
        (500, '{"error":{"message":"The server had an error processing your request."}}'),
        (429, "Rate limit reached for requests (schema irrelevant)"),
    ],
)
def test_other_errors_are_not_refusals(status: int, body: str) -> None:
    assert not is_mode_refusal(error(status, body), "json_schema")


def test_provider_words_extend_the_list() -> None:
    thinking = error(400, "Thinking may not be enabled when tool_choice forces tool use.")
    assert not is_mode_refusal(thinking, "json_schema")
    assert is_mode_refusal(thinking, "json_schema", extra_words=("tool_choice",))
