"""`OpenAIEmbeddingsClient`: an `EmbeddingsClient` for any OpenAI-compatible `/embeddings`.

async with OpenAIEmbeddingsClient("text-embedding-3-small") as embedder:
    reply = await embedder.embed(["first text", "second text"], dimensions=256)
    reply.vectors    # one list of floats per input, in order
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from penguiflow_llm_http import (
    HTTPXTransport,
    PriceTuple,
    PricingTable,
    RetryPolicy,
    TokenProvider,
    model_driver,
    record_usage,
    require_model,
)

from penguiflow.errors import describe_exception
from penguiflow.llm import (
    EmbeddingsResponse,
    LLMConfigurationError,
    LLMConnectionError,
    LLMHTTPError,
    LLMTimeoutError,
    LLMUsage,
)
from penguiflow.observability import Observation, observe
from penguiflow.resources import AsyncResource

# Retries are logged where the chat clients log theirs.
logger = logging.getLogger("penguiflow.llm")

__all__ = ["EMBEDDING_PRICES", "MAX_BATCH", "OpenAIEmbeddingsClient", "openai_embeddings"]

OPENAI_URL = "https://api.openai.com/v1"

#: OpenAI's limit on inputs in one request.
MAX_BATCH = 2048

#: OpenAI list prices in USD per million input tokens (embeddings have no output tokens).
EMBEDDING_PRICES: dict[str, PriceTuple] = {
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
}


class OpenAIEmbeddingsClient(AsyncResource):
    """One embedding model on one OpenAI-compatible endpoint (OpenAI, Azure's `/embeddings`
    path, vLLM, llama.cpp, Ollama's `/v1`).

    Inputs are sent `batch_size` at a time (at most OpenAI's 2048), one batch after another
    so a rate limit is met once; vectors come back in the inputs' order and usage is added
    over the batches. `dimensions` (here or per call) asks a model that can shorten its
    vectors for that many. Credentials work as for `OpenAIClient`. Errors are the
    `LLMError` tree's: a setup mistake is an `LLMConfigurationError` raised before any
    request, a provider's error status an `LLMHTTPError` (retried when worth it)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = OPENAI_URL,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        organization: str | None = None,
        headers: Mapping[str, str] | None = None,
        dimensions: int | None = None,
        batch_size: int = MAX_BATCH,
        pricing: PricingTable | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 60.0,
        path: str = "/embeddings",
        transport_client: Any = None,
    ) -> None:
        require_model("OpenAIEmbeddingsClient", model, "text-embedding-3-small")
        if not 1 <= batch_size <= MAX_BATCH:
            raise LLMConfigurationError(
                f"batch_size must be between 1 and {MAX_BATCH} (OpenAI's limit), got {batch_size}"
            )
        _check_dimensions(dimensions)
        host = urlsplit(base_url).hostname or ""
        extra_headers = dict(headers or {})
        if organization:
            extra_headers["OpenAI-Organization"] = organization
        self.transport = HTTPXTransport.for_provider(
            base_url,
            provider=f"OpenAI-compatible embeddings ({model})",
            provider_name="OpenAI",
            api_key=api_key,
            token_provider=token_provider,
            env_var="OPENAI_API_KEY",
            required=host == "api.openai.com",
            headers=extra_headers,
            timeout_s=timeout_s,
            client=transport_client,
        )
        self.model = model
        self.base_url = base_url
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.pricing = pricing if pricing is not None else PricingTable(EMBEDDING_PRICES)
        self.retry = retry or RetryPolicy()
        self.path = path
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.transport.aclose()

    async def embed(
        self, inputs: Sequence[str], *, dimensions: int | None = None
    ) -> EmbeddingsResponse:
        """A vector per string of `inputs`, in order. Observed (`penguiflow.observability`)
        as one `llm.call` event with `gen_ai.operation.name` "embeddings"."""
        texts = _check_inputs(inputs)
        _check_dimensions(dimensions)
        attributes = {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.system": "openai",
            "gen_ai.request.model": self.model,
            "stream": False,
            "retries": 0,
            "inputs": len(texts),
        }
        async with observe("llm", "call", attributes=attributes) as unit:
            response = await self._embed(texts, dimensions, unit)
            if unit.active:
                unit.attributes["gen_ai.response.model"] = response.model
                record_usage(unit, response.usage, response.cost_usd)
            return response

    async def _embed(
        self, texts: list[str], dimensions: int | None, unit: Observation
    ) -> EmbeddingsResponse:
        wanted = dimensions if dimensions is not None else self.dimensions
        if wanted is not None and unit.active:
            unit.attributes["gen_ai.embeddings.dimension.count"] = wanted
        vectors: list[list[float]] = []
        usage = LLMUsage()
        reported = False
        model: str | None = None
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            body: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
            if wanted is not None:
                body["dimensions"] = wanted
            answer = await self._post(body, unit)
            found, batch_usage, model = self._read(answer, len(batch), start, wanted)
            vectors += found
            if batch_usage is not None:
                reported = True
                usage = LLMUsage(input_tokens=usage.input_tokens + batch_usage.input_tokens)
        model = model or self.model
        total = usage if reported else None
        return EmbeddingsResponse(
            vectors=vectors, usage=total, cost_usd=self.pricing.cost(model, total), model=model
        )

    async def _post(self, body: Mapping[str, Any], unit: Observation | None = None) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.transport.post_json(self.path, body)
            except (LLMHTTPError, LLMConnectionError, LLMTimeoutError) as exc:
                retryable = not isinstance(exc, LLMHTTPError) or exc.retryable
                after = exc.retry_after_s if isinstance(exc, LLMHTTPError) else None
                delay = self.retry.delay_s(attempt, after) if retryable else None
                if delay is None:
                    raise
                logger.info(
                    "%s; retry %d of %d in %.2fs",
                    describe_exception(exc),
                    attempt,
                    self.retry.max_retries,
                    delay,
                )
                if unit is not None and unit.active:
                    unit.attributes["retries"] = int(unit.attributes.get("retries", 0)) + 1
                await asyncio.sleep(delay)

    def _read(
        self, answer: Any, count: int, start: int, wanted: int | None
    ) -> tuple[list[list[float]], LLMUsage | None, str | None]:
        """The batch's vectors by their `index` (the API does not promise order)."""

        def unreadable(problem: str) -> LLMHTTPError:
            return LLMHTTPError(
                self.transport.redact(
                    f"embeddings endpoint {self.base_url} answered 200 with a body it cannot "
                    f"use for inputs {start}..{start + count - 1}: {problem}"
                ),
                status=200,
                body=self.transport.redact(str(answer))[:500],
            )

        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, list):
            raise unreadable("no 'data' list")
        by_index: dict[int, list[float]] = {}
        for position, item in enumerate(data):
            try:
                index = int(item.get("index", position))
                vector = [float(value) for value in item["embedding"]]
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise unreadable(f"data[{position}]: {describe_exception(exc)}") from None
            by_index[index] = vector
        if sorted(by_index) != list(range(count)):
            raise unreadable(f"{len(by_index)} vector(s) for {count} input(s)")
        vectors = [by_index[index] for index in range(count)]
        if wanted is not None and any(len(vector) != wanted for vector in vectors):
            raise unreadable(
                f"vectors of {len(vectors[0])} numbers where dimensions={wanted} was asked "
                "(the model may not support shortened vectors: leave dimensions unset)"
            )
        raw_usage = answer.get("usage")
        usage = None
        if isinstance(raw_usage, Mapping):
            usage = LLMUsage(input_tokens=int(raw_usage.get("prompt_tokens") or 0))
        model = answer.get("model")
        return vectors, usage, model if isinstance(model, str) else None


def _check_inputs(inputs: Sequence[str]) -> list[str]:
    # A lone string is a Sequence[str] too: embedding it letter by letter is never meant.
    if isinstance(inputs, str | bytes):
        raise LLMConfigurationError("embed() takes a list of strings; wrap one text: [text]")
    texts = list(inputs)
    if not texts:
        raise LLMConfigurationError("embed() got no inputs: pass at least one string")
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            # OpenAI answers an empty string with a 400 that does not say which input.
            raise LLMConfigurationError(
                f"inputs[{index}] is {text!r}: every input must be a non-empty string"
            )
    return texts


def _check_dimensions(dimensions: int | None) -> None:
    if dimensions is not None and (isinstance(dimensions, bool) or dimensions < 1):
        raise LLMConfigurationError(f"dimensions must be a positive integer, got {dimensions!r}")


#: The `openai` driver of the `penguiflow.embeddings` group:
#: `resolve_driver("embeddings", "openai", model="text-embedding-3-small")`, or with a URL,
#: `resolve_driver("embeddings", "openai://127.0.0.1:8080/v1?model=nomic")` (host, port and
#: path become `base_url`, over http for a loopback host).
openai_embeddings = model_driver(
    OpenAIEmbeddingsClient,
    "text-embedding-3-small",
    kind="embeddings",
    label="embeddings client",
    url_parameters=("model", "scheme"),
)
