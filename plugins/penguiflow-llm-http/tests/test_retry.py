"""RetryPolicy and Retry-After parsing."""

from __future__ import annotations

import pytest
from penguiflow_llm_http import RetryPolicy, parse_retry_after

from penguiflow.llm import LLMConfigurationError


def test_retry_policy_backs_off_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=3, base_delay_s=1.0, max_delay_s=3.0, jitter=0.5)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 3.0)):
        delay = policy.delay_s(attempt)
        assert delay is not None and ceiling * 0.5 <= delay <= ceiling
    assert policy.delay_s(4) is None
    assert policy.delay_s(1, retry_after_s=7.0) == 7.0
    assert policy.delay_s(1, retry_after_s=120.0) is None  # beyond max_retry_after_s


def test_a_bad_policy_is_a_configuration_error() -> None:
    # LLMConfigurationError is also a ValueError, which these raised before.
    with pytest.raises(LLMConfigurationError, match="jitter must be between 0 and 1, got 2"):
        RetryPolicy(jitter=2)
    with pytest.raises(ValueError, match=r"max_retries must be >= 0 \(0 turns retries off\)"):
        RetryPolicy(max_retries=-1)


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("  ") is None and parse_retry_after("-5") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
