"""The facades: what they export, and that importing them stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import penguiflow_llm_http
import penguiflow_llm_http.testing

FACADE = {
    "REFUSAL_STATUSES", "REFUSAL_WORDS", "PriceTuple", "is_mode_refusal",
    "SCHEMA_MODES", "Credential", "HTTPXTransport", "ModelPrice", "ModelProfile", "PricingTable",
    "ProfileRegistry", "ProviderClient", "ProviderCodec", "ProviderReply", "ProviderRequest",
    "RetryPolicy", "SSEEvent", "SSEParser", "SchemaMode", "StreamDelta", "TokenProvider",
    "ToolCallDelta", "Transport", "check_request_options", "iter_sse", "model_driver",
    "parse_retry_after", "gen_ai_system", "record_response", "record_usage",
    "redact_secrets", "repair_instructions", "require_model", "resolve_credential",
    "schema_instructions", "schema_name", "schema_of",
}  # fmt: skip


def test_all_is_exactly_the_facade_and_every_name_resolves() -> None:
    assert set(penguiflow_llm_http.__all__) == FACADE
    assert len(penguiflow_llm_http.__all__) == len(FACADE)
    for name in FACADE:
        assert getattr(penguiflow_llm_http, name) is not None
    assert set(penguiflow_llm_http.testing.__all__) == {
        "RecordedRequest",
        "ScriptedHTTPServer",
        "ScriptedResponse",
    }
    for name in penguiflow_llm_http.testing.__all__:
        assert getattr(penguiflow_llm_http.testing, name) is not None


def test_public_classes_say_they_are_public() -> None:
    # Defined in private modules, documented under the facade's name.
    for name in ("ProviderClient", "HTTPXTransport", "RetryPolicy", "PricingTable"):
        assert getattr(penguiflow_llm_http, name).__module__.startswith("penguiflow_llm_http._")


def test_importing_the_toolkit_does_not_import_httpx() -> None:
    """Adapters' driver modules import the toolkit; httpx comes when a transport is made."""
    probe = (
        "import sys, json; import penguiflow_llm_http, penguiflow_llm_http.testing; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'httpx')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == []
