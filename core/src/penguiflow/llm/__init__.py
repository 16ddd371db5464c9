"""The JSON LLM client protocol, its provider-neutral models and errors, reply validation, and
a scripted client.

Adapters for real providers are plugins (`penguiflow-openai`, `penguiflow-anthropic`) chosen
by name through the `penguiflow.llm_adapters` driver group; `scripted` is built in. Native
tool calling (`LLMTool`, `LLMToolCall`, `ToolCallingLLMClient`), image input (`LLMImage`)
and embeddings (`EmbeddingsClient`) are described here too; `HashingEmbeddingsClient` is the
built-in `hashing` embeddings driver (no model, for tests and demos). The HTTP
toolkit those adapters are built on (`ProviderClient`, `HTTPXTransport`, SSE, retries,
pricing, model profiles) is the `penguiflow-llm-http` library: looking one of its names up
here raises an `ImportError` that says so.
"""

from __future__ import annotations

from typing import Any

from ._embeddings import EmbeddingsClient, EmbeddingsResponse
from ._errors import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMReplyError,
    LLMStreamError,
    LLMTimeoutError,
    LLMTruncationError,
)
from ._models import (
    FinishReason,
    LLMMessage,
    LLMResponse,
    LLMRole,
    LLMUsage,
    ResponseFormat,
    StreamCallback,
    normalize_messages,
)
from ._moved import MOVED_TO_LLM_HTTP, moved_name_error
from ._protocol import JSONLLMClient, ToolCallingLLMClient
from ._tools import (
    IMAGE_MEDIA_TYPES,
    LLMImage,
    LLMTool,
    LLMToolCall,
    ToolChoice,
    ToolLike,
    tool_definitions,
)
from ._validation import extract_json, validate_reply
from .hashing import HashingEmbeddingsClient
from .scripted import ScriptedCall, ScriptedLLMClient, ScriptedReply, ScriptExhaustedError

__all__ = [
    "IMAGE_MEDIA_TYPES",
    "EmbeddingsClient",
    "EmbeddingsResponse",
    "FinishReason",
    "HashingEmbeddingsClient",
    "JSONLLMClient",
    "LLMConfigurationError",
    "LLMConnectionError",
    "LLMError",
    "LLMHTTPError",
    "LLMImage",
    "LLMMessage",
    "LLMReplyError",
    "LLMResponse",
    "LLMRole",
    "LLMStreamError",
    "LLMTimeoutError",
    "LLMTool",
    "LLMToolCall",
    "LLMTruncationError",
    "LLMUsage",
    "ResponseFormat",
    "ScriptExhaustedError",
    "ScriptedCall",
    "ScriptedLLMClient",
    "ScriptedReply",
    "StreamCallback",
    "ToolCallingLLMClient",
    "ToolChoice",
    "ToolLike",
    "extract_json",
    "normalize_messages",
    "tool_definitions",
    "validate_reply",
]


def __getattr__(name: str) -> Any:
    if name in MOVED_TO_LLM_HTTP:
        # `http` was the module holding the transport; the library exports the class itself.
        new = "HTTPXTransport" if name == "http" else name
        raise moved_name_error(f"penguiflow.llm.{name}", f"penguiflow_llm_http.{new}")
    raise AttributeError(f"module 'penguiflow.llm' has no attribute {name!r}")
