"""Telling a refused structured-output mode from any other error answer.

Servers word a refusal in many ways, and not always with a 400: OpenAI ("Invalid schema for
response_format ..."), vLLM ("The provided JSON schema contains features not supported by
xgrammar."), llama.cpp (400 "JSON schema conversion failed: ...", and older builds 500
"response_format type must be one of ..."), Anthropic ("tools.0.input_schema: JSON schema is
invalid ..."). A refusal is recognised by its status and by wording about schemas, grammars
or the request's format options anywhere in the message or the body; an error that names
none of those (a missing model, a bad key, an outage) is not one.
"""

from __future__ import annotations

from collections.abc import Iterable

from penguiflow.llm import LLMHTTPError

from ._schema import SchemaMode

__all__ = ["REFUSAL_STATUSES", "REFUSAL_WORDS", "is_mode_refusal"]

#: 400/422 are the usual answers; llama.cpp (some builds) and proxies answer 500, and a
#: server without the feature may answer 501.
REFUSAL_STATUSES = frozenset({400, 422, 500, 501})

#: Lower-case fragments that mark an error as being about the structured-output request.
REFUSAL_WORDS: tuple[str, ...] = (
    "json_schema",
    "json schema",
    "jsonschema",
    "json_object",
    "response_format",
    "response format",
    "structured output",
    "structured_output",
    "schema",
    "grammar",
    "guided",
    "xgrammar",
    "outlines",
    "format_enforcer",
    "strict mode",
)


def is_mode_refusal(
    error: LLMHTTPError, mode: SchemaMode | None, *, extra_words: Iterable[str] = ()
) -> bool:
    """True when `error` says the server cannot do structured-output `mode` for this request.

    `prompt` is never refused (the schema is only prompt text). `extra_words` adds a
    provider's own wording (Anthropic's forced tool and prefill refusals)."""
    if mode is None or mode == "prompt" or error.status not in REFUSAL_STATUSES:
        return False
    text = f"{error.args[0] if error.args else ''} {error.body}".lower()
    return any(word in text for word in (*REFUSAL_WORDS, *extra_words))
