"""`AnthropicClient`: a `JSONLLMClient` for the Anthropic Messages API.

    client = AnthropicClient("claude-sonnet-4-5")             # ANTHROPIC_API_KEY
    reply = await client.complete(messages=[...], response_format=Answer)

Driver name `anthropic` in `penguiflow.llm_adapters`:
`resolve_driver("llm_adapter", "anthropic", model="claude-3-5-haiku-latest")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from penguiflow_llm_http import (
    HTTPXTransport,
    ModelProfile,
    PriceTuple,
    PricingTable,
    ProfileRegistry,
    ProviderClient,
    RetryPolicy,
    TokenProvider,
    check_request_options,
    model_driver,
    require_model,
)

from ._codec import PASSTHROUGH, AnthropicCodec

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_PRICES",
    "PROFILES",
    "AnthropicClient",
    "anthropic_adapter",
]

ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"

#: Claude models take the response schema as a forced tool call first; with extended thinking
#: a forced tool is refused, and the client steps down to the prompt modes by itself.
PROFILES = ProfileRegistry(
    [
        ModelProfile("claude", prefixes=("claude-",), reasoning=True),
        ModelProfile("claude-thinking", schema_modes=("prompt",), reasoning=True),
        ModelProfile("prompt-only", schema_modes=("prompt",)),
    ],
    default="claude",
)

#: Anthropic list prices in USD per million tokens (input, output, cache read, cache write):
#: a cache read costs 0.1x the input rate and a (5-minute) cache write 1.25x. Extend for
#: your contracts.
DEFAULT_PRICES: dict[str, PriceTuple] = {
    prefix: (rate_in, rate_out, round(rate_in * 0.1, 6), round(rate_in * 1.25, 6))
    for prefix, (rate_in, rate_out) in {
        "claude-3-haiku": (0.25, 1.25),
        "claude-3-5-haiku": (0.80, 4.00),
        "claude-haiku-4-5": (1.00, 5.00),
        "claude-3-5-sonnet": (3.00, 15.00),
        "claude-3-7-sonnet": (3.00, 15.00),
        "claude-sonnet-4": (3.00, 15.00),
        "claude-opus-4": (15.00, 75.00),
    }.items()
}


class AnthropicClient(ProviderClient):
    """One Claude model.

    Credentials: `token_provider` (called before each request, and with
    `force_refresh=True` after a 401) wins over `api_key`, which wins over the environment
    variable `ANTHROPIC_API_KEY`; required for api.anthropic.com. They are sent as
    `x-api-key`. `max_tokens` (default 4096) caps each reply; `temperature`, `top_p`,
    `top_k`, `stop_sequences`, `thinking` and `metadata` go to the request body, and
    `extra_body={...}` adds anything else."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = ANTHROPIC_URL,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        anthropic_version: str = ANTHROPIC_VERSION,
        headers: Mapping[str, str] | None = None,
        profile: str | ModelProfile | None = None,
        pricing: PricingTable | None = None,
        retry: RetryPolicy | None = None,
        max_repairs: int = 2,
        max_tokens: int = 4096,
        timeout_s: float = 60.0,
        auth_header: str = "x-api-key",
        auth_prefix: str = "",
        transport_client: Any = None,
        **options: Any,
    ) -> None:
        require_model("AnthropicClient", model, "claude-sonnet-4-5")
        check_request_options("AnthropicClient", options, PASSTHROUGH)
        transport = HTTPXTransport.for_provider(
            base_url,
            provider=f"Anthropic ({model})",
            provider_name="Anthropic",
            api_key=api_key,
            token_provider=token_provider,
            env_var="ANTHROPIC_API_KEY",
            required=urlsplit(base_url).hostname == "api.anthropic.com",
            auth_header=auth_header,
            auth_prefix=auth_prefix,
            headers={"anthropic-version": anthropic_version, **dict(headers or {})},
            timeout_s=timeout_s,
            client=transport_client,
        )
        super().__init__(
            model=model,
            codec=AnthropicCodec(max_tokens=max_tokens),
            transport=transport,
            profile=PROFILES.resolve(model, profile),
            pricing=pricing if pricing is not None else PricingTable(DEFAULT_PRICES),
            retry=retry,
            max_repairs=max_repairs,
            options=options,
        )
        self.base_url = base_url


#: The `anthropic` driver: `resolve_driver("llm_adapter", "anthropic", model=..., ...)`.
anthropic_adapter = model_driver(AnthropicClient, "claude-3-5-haiku-latest")
