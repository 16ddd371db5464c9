"""Where a credential comes from, and that it never shows."""

from __future__ import annotations

import pytest
from penguiflow_llm_http import Credential, resolve_credential

from penguiflow.llm import LLMConfigurationError
from penguiflow.testing import run_async


def test_credentials_order_and_secrecy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PF_TEST_KEY", "env-secret")
    from_env = resolve_credential(
        api_key=None, token_provider=None, env_var="PF_TEST_KEY", required=True, provider_name="X"
    )
    assert from_env.source == "environment variable PF_TEST_KEY"
    assert "env-secret" not in repr(from_env)
    provided = resolve_credential(
        api_key=None,
        token_provider=lambda force_refresh: "p",
        env_var="PF_TEST_KEY",
        required=True,
        provider_name="X",
    )
    assert provided.source == "token provider" and provided.refreshable
    given = resolve_credential(
        api_key="k", token_provider=None, env_var="PF_TEST_KEY", required=True, provider_name="X"
    )
    assert given.source == "api_key argument" and not given.refreshable
    monkeypatch.delenv("PF_TEST_KEY")
    with pytest.raises(LLMConfigurationError, match=r"no credentials.*PF_TEST_KEY"):
        resolve_credential(
            api_key=None,
            token_provider=None,
            env_var="PF_TEST_KEY",
            required=True,
            provider_name="X",
        )
    optional = resolve_credential(
        api_key=None, token_provider=None, env_var="PF_TEST_KEY", required=False, provider_name="X"
    )
    assert optional.source == "none" and run_async(optional.token) is None


def test_conflicting_or_empty_keys_are_refused() -> None:
    with pytest.raises(LLMConfigurationError, match="X: pass api_key= or token_provider=, not"):
        resolve_credential(
            api_key="k",
            token_provider=lambda force_refresh: "t",
            env_var="PF_UNSET",
            required=True,
            provider_name="X",
        )
    with pytest.raises(LLMConfigurationError, match="X: api_key is empty"):
        resolve_credential(
            api_key="", token_provider=None, env_var="PF_UNSET", required=True, provider_name="X"
        )


def test_token_providers_may_be_async_and_must_return_a_string() -> None:
    calls: list[bool] = []

    async def fresh(*, force_refresh: bool) -> str:
        calls.append(force_refresh)
        return "new" if force_refresh else "old"

    credential = Credential(provider=fresh, source="token provider")
    assert run_async(credential.token) == "old"
    assert run_async(lambda: credential.token(force_refresh=True)) == "new"
    assert calls == [False, True]
    broken = Credential(provider=lambda force_refresh: 42, source="token provider")
    with pytest.raises(LLMConfigurationError, match="returned int, not a non-empty string"):
        run_async(broken.token)
