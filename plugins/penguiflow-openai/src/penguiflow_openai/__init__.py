"""OpenAI-compatible Chat Completions for PenguiFlow: `OpenAIClient` (driver `openai`), and
`OpenAIEmbeddingsClient` for `/v1/embeddings` (driver `openai` in `penguiflow.embeddings`)."""

from __future__ import annotations

from ._codec import OpenAICodec, strict_compatible
from ._embeddings import EMBEDDING_PRICES, MAX_BATCH, OpenAIEmbeddingsClient, openai_embeddings
from ._strict import strict_reply, strict_schema
from .client import DEFAULT_PRICES, PROFILES, OpenAIClient, openai_adapter

__all__ = [
    "DEFAULT_PRICES",
    "EMBEDDING_PRICES",
    "MAX_BATCH",
    "PROFILES",
    "OpenAIClient",
    "OpenAICodec",
    "OpenAIEmbeddingsClient",
    "openai_adapter",
    "openai_embeddings",
    "strict_compatible",
    "strict_reply",
    "strict_schema",
]
