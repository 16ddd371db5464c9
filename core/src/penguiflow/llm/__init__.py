"""The JSON LLM client protocol, its provider-neutral models, a scripted client, and the
toolkit HTTP adapters are built from.

`ProviderClient` does structured-output modes, validation and repair, retries, streaming and
cost the same way for every provider, around a `ProviderCodec` (one provider's wire format)
and a `Transport` (`penguiflow.llm.http.HTTPXTransport`, which needs httpx). Adapters for
real providers are plugins (`penguiflow-openai`, `penguiflow-anthropic`) chosen by name
through the `penguiflow.llm_adapters` driver group; `scripted` is built in.
"""

from __future__ import annotations

from ._adapters import check_request_options, model_driver, require_model
from ._credentials import Credential, TokenProvider, resolve_credential
from ._engine import (
    ProviderClient,
    ProviderCodec,
    ProviderReply,
    ProviderRequest,
    StreamDelta,
    Transport,
)
from ._errors import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMReplyError,
    LLMStreamError,
    LLMTimeoutError,
)
from ._models import (
    LLMMessage,
    LLMResponse,
    LLMRole,
    LLMUsage,
    ResponseFormat,
    StreamCallback,
    normalize_messages,
)
from ._pricing import ModelPrice, PricingTable
from ._protocol import JSONLLMClient
from ._retry import RetryPolicy, parse_retry_after
from ._schema import (
    SCHEMA_MODES,
    ModelProfile,
    ProfileRegistry,
    SchemaMode,
    schema_instructions,
    schema_name,
    schema_of,
)
from ._sse import SSEEvent, SSEParser, iter_sse
from ._validation import extract_json, repair_instructions, validate_reply
from .scripted import ScriptedCall, ScriptedLLMClient, ScriptedReply, ScriptExhaustedError

__all__ = [
    "SCHEMA_MODES",
    "Credential",
    "JSONLLMClient",
    "LLMConfigurationError",
    "LLMConnectionError",
    "LLMError",
    "LLMHTTPError",
    "LLMMessage",
    "LLMReplyError",
    "LLMResponse",
    "LLMRole",
    "LLMStreamError",
    "LLMTimeoutError",
    "LLMUsage",
    "ModelPrice",
    "ModelProfile",
    "PricingTable",
    "ProfileRegistry",
    "ProviderClient",
    "ProviderCodec",
    "ProviderReply",
    "ProviderRequest",
    "ResponseFormat",
    "RetryPolicy",
    "SSEEvent",
    "SSEParser",
    "SchemaMode",
    "ScriptExhaustedError",
    "ScriptedCall",
    "ScriptedLLMClient",
    "ScriptedReply",
    "StreamCallback",
    "StreamDelta",
    "TokenProvider",
    "Transport",
    "check_request_options",
    "extract_json",
    "iter_sse",
    "model_driver",
    "normalize_messages",
    "parse_retry_after",
    "repair_instructions",
    "require_model",
    "resolve_credential",
    "schema_instructions",
    "schema_name",
    "schema_of",
    "validate_reply",
]
