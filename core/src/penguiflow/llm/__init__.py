"""The JSON LLM client protocol, its provider-neutral models, and a scripted client.

Adapters for real providers are plugins (`penguiflow-openai`, `penguiflow-anthropic`) chosen by
name through the `penguiflow.llm_adapters` driver group; `scripted` is built in.
"""

from __future__ import annotations

from ._models import (
    LLMMessage,
    LLMResponse,
    LLMRole,
    LLMUsage,
    ResponseFormat,
    StreamCallback,
    normalize_messages,
)
from ._protocol import JSONLLMClient
from .scripted import ScriptedCall, ScriptedLLMClient, ScriptedReply, ScriptExhaustedError

__all__ = [
    "JSONLLMClient",
    "LLMMessage",
    "LLMResponse",
    "LLMRole",
    "LLMUsage",
    "ResponseFormat",
    "ScriptExhaustedError",
    "ScriptedCall",
    "ScriptedLLMClient",
    "ScriptedReply",
    "StreamCallback",
    "normalize_messages",
]
