"""OpenAI-compatible Chat Completions for PenguiFlow: `OpenAIClient` (driver `openai`)."""

from __future__ import annotations

from ._codec import OpenAICodec, strict_compatible
from ._strict import strict_reply, strict_schema
from .client import DEFAULT_PRICES, PROFILES, OpenAIClient, openai_adapter

__all__ = [
    "DEFAULT_PRICES",
    "PROFILES",
    "OpenAIClient",
    "OpenAICodec",
    "openai_adapter",
    "strict_compatible",
    "strict_reply",
    "strict_schema",
]
