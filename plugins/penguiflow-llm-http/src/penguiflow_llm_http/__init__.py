"""The HTTP toolkit PenguiFlow's LLM adapters are built on.

`ProviderClient` does structured-output modes, validation and repair, retries, streaming and
cost the same way for every provider, around a `ProviderCodec` (one provider's wire format)
and a `Transport` (`HTTPXTransport`, JSON and server-sent events over httpx). An adapter
plugin (`penguiflow-openai`, `penguiflow-anthropic`, or your own) depends on this package,
writes a codec, and registers a driver in `penguiflow.llm_adapters` with `model_driver`.

What does not depend on HTTP stays in the kernel's `penguiflow.llm`: the `JSONLLMClient`
protocol, the message and response models, reply validation (`validate_reply`) and the
`LLMError` tree, which the toolkit raises. Test helpers are in `penguiflow_llm_http.testing`.
Every call is observed as an `llm.call` event (`record_response`, `record_usage`: the
OpenTelemetry GenAI attributes) and its requests carry the W3C `traceparent`.
`redact_secrets` keeps a credential out of errors in whatever encoding a provider echoes it.
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
    ToolCallDelta,
    Transport,
)
from ._observe import gen_ai_system, record_response, record_usage
from ._pricing import ModelPrice, PriceTuple, PricingTable
from ._redact import redact_secrets
from ._refusals import REFUSAL_STATUSES, REFUSAL_WORDS, is_mode_refusal
from ._retry import RetryPolicy, parse_retry_after
from ._schema import (
    SCHEMA_MODES,
    ModelProfile,
    ProfileRegistry,
    SchemaMode,
    repair_instructions,
    schema_instructions,
    schema_name,
    schema_of,
)
from ._sse import SSEEvent, SSEParser, iter_sse
from ._transport import HTTPXTransport

__all__ = [
    "REFUSAL_STATUSES",
    "REFUSAL_WORDS",
    "SCHEMA_MODES",
    "Credential",
    "HTTPXTransport",
    "ModelPrice",
    "ModelProfile",
    "PriceTuple",
    "PricingTable",
    "ProfileRegistry",
    "ProviderClient",
    "ProviderCodec",
    "ProviderReply",
    "ProviderRequest",
    "RetryPolicy",
    "SSEEvent",
    "SSEParser",
    "SchemaMode",
    "StreamDelta",
    "TokenProvider",
    "ToolCallDelta",
    "Transport",
    "check_request_options",
    "gen_ai_system",
    "is_mode_refusal",
    "iter_sse",
    "model_driver",
    "parse_retry_after",
    "record_response",
    "record_usage",
    "redact_secrets",
    "repair_instructions",
    "require_model",
    "resolve_credential",
    "schema_instructions",
    "schema_name",
    "schema_of",
]
