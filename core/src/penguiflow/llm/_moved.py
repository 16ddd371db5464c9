"""Names that left `penguiflow.llm` for the `penguiflow-llm-http` library, and the error that
says where they went.

The HTTP toolkit (ProviderClient, the httpx transport, SSE, retries, pricing, profiles,
credentials) is only used by HTTP adapter plugins, so it is a library of its own and the
kernel does not carry it, nor depend on httpx.
"""

from __future__ import annotations

from ..errors import PenguiFlowError

__all__ = ["MOVED_TO_LLM_HTTP", "MovedToLLMHTTPError", "moved_name_error"]

#: Names `penguiflow.llm` exported in 4.0 that `penguiflow_llm_http` exports now (`http` was
#: the submodule holding `HTTPXTransport`).
MOVED_TO_LLM_HTTP = frozenset(
    {
        "SCHEMA_MODES",
        "Credential",
        "ModelPrice",
        "ModelProfile",
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
        "Transport",
        "check_request_options",
        "http",
        "iter_sse",
        "model_driver",
        "parse_retry_after",
        "repair_instructions",
        "require_model",
        "resolve_credential",
        "schema_instructions",
        "schema_name",
        "schema_of",
    }
)


class MovedToLLMHTTPError(PenguiFlowError, ImportError):
    """A name that moved to `penguiflow_llm_http` was looked up where it used to be.

    An `ImportError` rather than an `AttributeError` on purpose: `from penguiflow.llm import
    ProviderClient` turns an `AttributeError` from the module's `__getattr__` into a bare
    "cannot import name" and drops the message saying where the name went. The price:
    `hasattr()` or `getattr(..., default)` on a moved name raises instead of answering; to
    detect the toolkit, use `importlib.util.find_spec("penguiflow_llm_http")`."""


def moved_name_error(old: str, new: str) -> MovedToLLMHTTPError:
    """The error for looking up `old` (a dotted path such as `penguiflow.llm.ProviderClient`),
    which is `new` now (`penguiflow_llm_http.ProviderClient`)."""
    new_module, _, new_name = new.rpartition(".")
    return MovedToLLMHTTPError(
        f"{old} moved out of the kernel into the penguiflow-llm-http library: "
        f"`pip install penguiflow-llm-http`, then `from {new_module} import {new_name}`",
        name=new_module,
    )
