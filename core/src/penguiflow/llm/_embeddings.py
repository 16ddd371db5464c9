"""The embeddings client protocol and its reply, provider-neutral like `JSONLLMClient`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from ._models import LLMUsage

__all__ = ["EmbeddingsClient", "EmbeddingsResponse"]


class EmbeddingsResponse(BaseModel):
    """One vector per input, in the inputs' order, with usage and cost when known (usage
    counts only `input_tokens`: embeddings produce no output tokens)."""

    vectors: list[list[float]] = Field(default_factory=list)
    usage: LLMUsage | None = None
    cost_usd: float | None = None
    model: str | None = None

    @property
    def dimensions(self) -> int | None:
        """The length of the vectors (None when there are none)."""
        return len(self.vectors[0]) if self.vectors else None


@runtime_checkable
class EmbeddingsClient(Protocol):
    """One async method: `embed(inputs)` returns a vector per input string. `dimensions`
    asks a model that can shorten its vectors (OpenAI's text-embedding-3) for that many.
    Adapters split long input lists into batches the provider accepts; errors are the
    `LLMError` tree's, as for `JSONLLMClient`."""

    async def embed(
        self, inputs: Sequence[str], *, dimensions: int | None = None
    ) -> EmbeddingsResponse: ...
