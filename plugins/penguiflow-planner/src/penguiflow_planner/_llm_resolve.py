"""`llm=`: PenguiFlow's model string or config dict, built by an installed LLM adapter driver.

PenguiFlow hands `llm` to LiteLLM (or its own native layer). We have neither: the model is
built by a driver of the `penguiflow.llm_adapters` group, chosen the way LiteLLM reads the
name:

- `"<provider>/<model>"`: the driver named `provider` builds `model` (`openai/gpt-4o-mini`,
  `anthropic/claude-3-5-haiku-latest`, or a third-party driver's name); `hosted_vllm/...`,
  LiteLLM's name for an OpenAI-compatible server, is the `openai` driver;
- a bare name: Claude models (`claude-...`) are `anthropic`, OpenAI's model families
  (`gpt-...`, `o1`/`o3`/`o4...`, `chatgpt-...`) are `openai`;
- any model with a `base_url` (or LiteLLM's `api_base`) and no provider is served by an
  OpenAI-compatible endpoint: the `openai` driver, the model name kept whole
  (`{"model": "meta-llama/Llama-3.1-8B", "base_url": "http://127.0.0.1:8000/v1"}`).

A dict carries `model` and the adapter's options (`api_key`, `base_url`, `temperature`,
`max_tokens`...). LiteLLM spellings are read too: `api_base` (`base_url`), `timeout`
(`timeout_s`), `custom_llm_provider` (the driver); `drop_params`, `num_retries` and
`max_retries` are dropped (retries are the planner's, see `call_client`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from penguiflow.errors import ConfigurationError
from penguiflow.plugins import DriverNotFoundError, PluginSettings, resolve_driver

__all__ = ["resolve_llm"]

#: LiteLLM provider prefixes that mean one of our drivers.
_PROVIDER_ALIASES = {"hosted_vllm": "openai", "openai_compatible": "openai", "azure_ai": "openai"}
_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "ft:gpt-", "text-davinci")
#: OpenAI models that refuse a temperature other than the default (reasoning models).
_NO_TEMPERATURE_PREFIXES = ("o1", "o3", "o4", "gpt-5")
#: Our first-party adapters: they take `timeout_s`, `retry` and `max_repairs`.
_FIRST_PARTY = ("openai", "anthropic")
_DROPPED_OPTIONS = ("drop_params", "num_retries", "max_retries")
#: Config keys never shown in a message (credentials, and headers that may carry them).
_SECRET = re.compile(r"key|token|secret|password|auth|header", re.IGNORECASE)


def resolve_llm(
    llm: str | Mapping[str, Any],
    *,
    temperature: float = 0.0,
    timeout_s: float | None = None,
    settings: PluginSettings | None = None,
) -> Any:
    """The `JSONLLMClient` for PenguiFlow's `llm=` (a model string or a config dict).

    `temperature` is PenguiFlow's planner temperature (a config dict's own wins; OpenAI's
    reasoning models get none, as they refuse it). `timeout_s` (`llm_timeout_s`) becomes the
    first-party adapters' HTTP timeout. Their own retries and schema repairs are turned off:
    the planner retries (`call_client`) and repairs (its repair round) itself, so one layer
    decides. No driver fits: `DriverNotFoundError` naming the model and what to install."""
    model, options = _split(llm)
    provider = options.pop("custom_llm_provider", None) or options.pop("provider", None)
    driver, model = _driver_for(model, provider, has_base_url="base_url" in options)
    lowered = model.lower()
    if not lowered.startswith(_NO_TEMPERATURE_PREFIXES) or driver != "openai":
        options.setdefault("temperature", temperature)
    if driver in _FIRST_PARTY:
        if timeout_s is not None:
            options.setdefault("timeout_s", timeout_s)
        options.setdefault("max_repairs", 0)
        retry = _no_retries()
        if retry is not None:
            options.setdefault("retry", retry)
    try:
        return resolve_driver("llm_adapter", driver, settings=settings, model=model, **options)
    except DriverNotFoundError as exc:
        raise DriverNotFoundError(f"cannot build the planner's model {_shown(llm)}: {exc}") from exc


def _split(llm: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(llm, str):
        if not llm.strip():
            raise ConfigurationError(
                "llm is empty; give a model name such as 'gpt-4o-mini' or "
                "'anthropic/claude-3-5-haiku-latest', or a dict {'model': ..., 'base_url': ...}"
            )
        return llm.strip(), {}
    if not isinstance(llm, Mapping):
        raise ConfigurationError(
            f"llm must be a model name (str) or a config dict, got {type(llm).__name__}"
        )
    options = {str(key): value for key, value in llm.items()}
    model = options.pop("model", None)
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(
            f"the llm config {_shown(llm)} needs 'model': the model's name, e.g. "
            "{'model': 'gpt-4o-mini', 'api_key': ...}"
        )
    if "api_base" in options:
        base = options.pop("api_base")
        options.setdefault("base_url", base)
    if "timeout" in options:
        options.setdefault("timeout_s", options.pop("timeout"))
    for key in _DROPPED_OPTIONS:
        options.pop(key, None)
    return model.strip(), options


def _driver_for(model: str, provider: Any, *, has_base_url: bool) -> tuple[str, str]:
    """(driver name, model name for that driver)."""
    if provider is not None:
        name = _PROVIDER_ALIASES.get(str(provider), str(provider))
        prefix = f"{provider}/"
        return name, model[len(prefix) :] if model.startswith(prefix) else model
    head, slash, rest = model.partition("/")
    if slash and rest:
        if head in _PROVIDER_ALIASES or head in _FIRST_PARTY:
            return _PROVIDER_ALIASES.get(head, head), rest
        if has_base_url:
            return "openai", model  # an OpenAI-compatible server names models with slashes
        return head, rest  # maybe a third-party driver named after the provider
    lowered = model.lower()
    if lowered.startswith("claude"):
        return "anthropic", model
    if lowered.startswith(_OPENAI_PREFIXES) or has_base_url:
        return "openai", model
    raise ConfigurationError(
        f"cannot tell which LLM adapter serves model {model!r}: prefix it with the provider "
        f"('openai/{model}', 'anthropic/{model}'), or give the OpenAI-compatible server it runs "
        f"on: llm={{'model': {model!r}, 'base_url': 'http://127.0.0.1:8000/v1'}}"
    )


def _no_retries() -> Any:
    """A retry policy that does not retry, from the HTTP toolkit our adapters share; None if
    it is not installed (then the driver is not either, and resolving says so)."""
    try:
        from penguiflow_llm_http import RetryPolicy
    except ImportError:
        return None
    return RetryPolicy(max_retries=0)


def _shown(llm: str | Mapping[str, Any]) -> str:
    """The model, for messages: a dict without its credentials."""
    if isinstance(llm, str):
        return repr(llm)
    return repr({key: value for key, value in llm.items() if not _SECRET.search(str(key))})
