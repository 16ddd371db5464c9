"""The Anthropic Messages API for PenguiFlow: `AnthropicClient` (driver `anthropic`)."""

from __future__ import annotations

from ._codec import AnthropicCodec
from .client import ANTHROPIC_VERSION, DEFAULT_PRICES, PROFILES, AnthropicClient, anthropic_adapter

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_PRICES",
    "PROFILES",
    "AnthropicClient",
    "AnthropicCodec",
    "anthropic_adapter",
]
