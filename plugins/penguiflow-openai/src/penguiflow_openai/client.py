"""`OpenAIClient`: a `JSONLLMClient` for any OpenAI-compatible Chat Completions endpoint.

    client = OpenAIClient("gpt-4o-mini")                                   # api.openai.com
    client = OpenAIClient("llama3.1", base_url="http://127.0.0.1:11434/v1")  # Ollama
    client = OpenAIClient.azure("https://res.openai.azure.com", deployment="gpt4o",
                                api_version="2024-10-21", api_key=...)
    reply = await client.complete(messages=[...], response_format=Answer)

Driver name `openai` in `penguiflow.llm_adapters`:
`resolve_driver("llm_adapter", "openai", model="gpt-4o-mini")`.
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

from ._codec import PASSTHROUGH, OpenAICodec

__all__ = ["DEFAULT_PRICES", "PROFILES", "OpenAIClient", "openai_adapter"]

OPENAI_URL = "https://api.openai.com/v1"

#: Structured-output support by model family. Unknown models start at json_schema and step
#: down when the server refuses a mode (vLLM, Ollama, llama.cpp and NIM accept json_schema).
PROFILES = ProfileRegistry(
    [
        ModelProfile(
            "openai",
            prefixes=("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4"),
            schema_modes=("json_schema", "json_object", "prompt"),
        ),
        ModelProfile(
            "openai-legacy", prefixes=("gpt-4-", "gpt-3.5"), schema_modes=("json_object", "prompt")
        ),
        ModelProfile(
            "reasoning",
            prefixes=("deepseek-r1", "deepseek-reasoner", "qwq"),
            schema_modes=("json_object", "prompt"),
            reasoning=True,
        ),
        ModelProfile("json-object", schema_modes=("json_object", "prompt")),
        ModelProfile("prompt-only", schema_modes=("prompt",)),
        ModelProfile("openai-compatible"),
    ],
    default="openai-compatible",
)

#: OpenAI list prices in USD per million tokens (input, output, cached input, cache write);
#: caching is automatic and writing to the cache costs nothing extra. Extend for your contracts.
DEFAULT_PRICES: dict[str, PriceTuple] = {
    "gpt-4o": (2.50, 10.00, 1.25, None),
    "gpt-4o-mini": (0.15, 0.60, 0.075, None),
    "gpt-4.1": (2.00, 8.00, 0.50, None),
    "gpt-4.1-mini": (0.40, 1.60, 0.10, None),
    "gpt-4.1-nano": (0.10, 0.40, 0.025, None),
    "o3-mini": (1.10, 4.40, 0.55, None),
    "o4-mini": (1.10, 4.40, 0.275, None),
}


class OpenAIClient(ProviderClient):
    """One model on one OpenAI-compatible endpoint.

    Credentials: `token_provider` (called before each request, and with
    `force_refresh=True` after a 401) wins over `api_key`, which wins over the environment
    variable `OPENAI_API_KEY`. They are required for api.openai.com; other endpoints get no
    auth header when none is given (local servers).
    Options such as `temperature`, `max_tokens`, `seed`, `reasoning_effort` go to the request
    body; `extra_body={...}` adds anything else. `profile=` names a `PROFILES` entry (or is a
    `ModelProfile`); by default it follows the model name."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = OPENAI_URL,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        organization: str | None = None,
        headers: Mapping[str, str] | None = None,
        profile: str | ModelProfile | None = None,
        pricing: PricingTable | None = None,
        retry: RetryPolicy | None = None,
        max_repairs: int = 2,
        timeout_s: float = 60.0,
        stream_usage: bool = True,
        path: str = "/chat/completions",
        auth_header: str = "Authorization",
        auth_prefix: str = "Bearer ",
        transport_client: Any = None,
        **options: Any,
    ) -> None:
        require_model("OpenAIClient", model, "gpt-4o-mini")
        check_request_options("OpenAIClient", options, PASSTHROUGH)
        host = urlsplit(base_url).hostname or ""
        extra_headers = dict(headers or {})
        if organization:
            extra_headers["OpenAI-Organization"] = organization
        transport = HTTPXTransport.for_provider(
            base_url,
            provider=f"OpenAI-compatible endpoint ({model})",
            provider_name="OpenAI",
            api_key=api_key,
            token_provider=token_provider,
            env_var="OPENAI_API_KEY",
            required=host == "api.openai.com" or host.endswith(".openai.azure.com"),
            auth_header=auth_header,
            auth_prefix=auth_prefix,
            headers=extra_headers,
            timeout_s=timeout_s,
            client=transport_client,
        )
        super().__init__(
            model=model,
            codec=OpenAICodec(path=path, stream_usage=stream_usage),
            transport=transport,
            profile=PROFILES.resolve(model, profile),
            pricing=pricing if pricing is not None else PricingTable(DEFAULT_PRICES),
            retry=retry,
            max_repairs=max_repairs,
            options=options,
        )
        self.base_url = base_url

    @classmethod
    def azure(
        cls,
        endpoint: str,
        *,
        deployment: str,
        api_version: str,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        **kwargs: Any,
    ) -> OpenAIClient:
        """Azure OpenAI: `endpoint` is `https://<resource>.openai.azure.com`. A key goes in
        the `api-key` header; a token provider (Entra ID) as a bearer token."""
        base = f"{endpoint.rstrip('/')}/openai/deployments/{deployment}"
        bearer = token_provider is not None
        if api_key is None and token_provider is None:
            import os

            api_key = os.environ.get("AZURE_OPENAI_API_KEY")
        return cls(
            deployment,
            base_url=base,
            api_key=api_key,
            token_provider=token_provider,
            path=f"/chat/completions?api-version={api_version}",
            auth_header="Authorization" if bearer else "api-key",
            auth_prefix="Bearer " if bearer else "",
            **kwargs,
        )


#: The `openai` driver: `resolve_driver("llm_adapter", "openai", model=..., ...)`.
openai_adapter = model_driver(OpenAIClient, "gpt-4o-mini")
