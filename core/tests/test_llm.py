"""The provider-neutral half of penguiflow.llm: models, errors, reply validation, the
scripted client, and the names that moved to penguiflow-llm-http."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import penguiflow.llm
from penguiflow.errors import PenguiFlowError
from penguiflow.llm import (
    JSONLLMClient,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMMessage,
    LLMReplyError,
    LLMStreamError,
    LLMTimeoutError,
    LLMTruncationError,
    LLMUsage,
    ScriptedLLMClient,
    ScriptExhaustedError,
    extract_json,
    normalize_messages,
    validate_reply,
)

KERNEL_SRC = Path(penguiflow.llm.__file__).resolve().parent.parent


class Plan(BaseModel):
    tool: str


class Point(BaseModel):
    x: int
    y: int


def test_normalize_messages() -> None:
    messages = normalize_messages(
        [{"role": "user", "content": "hi"}, LLMMessage(role="system", content="s")]
    )
    assert [m.role for m in messages] == ["user", "system"]
    with pytest.raises(ValueError, match=r"messages\[1\] is not a valid chat message"):
        normalize_messages([{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match="messages is empty"):
        normalize_messages([])
    assert LLMUsage(input_tokens=2, output_tokens=3).total_tokens == 5


async def test_script_replies_in_order_and_records_calls() -> None:
    client = ScriptedLLMClient(["first", {"tool": "search"}, Plan(tool="fetch")])
    assert isinstance(client, JSONLLMClient)
    texts = [
        (await client.complete(messages=[{"role": "user", "content": str(i)}])).text
        for i in range(3)
    ]
    assert texts == ["first", '{"tool": "search"}', '{"tool":"fetch"}']
    assert [c.messages[0].content for c in client.calls] == ["0", "1", "2"]
    with pytest.raises(ScriptExhaustedError, match=r"ran out of replies after 3 call\(s\)"):
        await client.complete(messages=[{"role": "user", "content": "more"}])
    client.add("late")
    assert client.remaining == 1


async def test_exceptions_and_callables() -> None:
    async def echo_last(messages: list[LLMMessage]) -> str:
        return messages[-1].content.upper()

    client = ScriptedLLMClient(
        [TimeoutError("slow model"), echo_last, lambda msgs: {"n": len(msgs)}]
    )
    with pytest.raises(TimeoutError, match="slow model"):
        await client.complete(messages=[{"role": "user", "content": "a"}])
    assert (await client.complete(messages=[{"role": "user", "content": "b"}])).text == "B"
    assert (await client.complete(messages=[{"role": "user", "content": "c"}])).text == '{"n": 1}'


async def test_streaming_chunks_and_async_callbacks() -> None:
    seen: list[tuple[str, bool]] = []

    async def collect(piece: str, done: bool) -> None:
        seen.append((piece, done))

    client = ScriptedLLMClient(["abcdefg", ""], chunk_size=3)
    response = await client.complete(
        messages=[{"role": "user", "content": "x"}], stream=True, on_stream_chunk=collect
    )
    assert response.text == "abcdefg" and seen == [("abc", False), ("def", False), ("g", True)]
    seen.clear()
    await client.complete(
        messages=[{"role": "user", "content": "x"}], stream=True, on_stream_chunk=collect
    )
    assert seen == [("", True)]
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        ScriptedLLMClient(chunk_size=0)


async def test_unsupported_reply_type() -> None:
    client = ScriptedLLMClient([42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="is not text, a mapping, a model or an exception"):
        await client.complete(messages=[{"role": "user", "content": "x"}])


def test_driver_options_are_checked() -> None:
    from penguiflow.plugins import resolve_driver

    client: Any = resolve_driver("llm_adapter", "scripted", replies=["x"], model="m")
    assert client.model == "m" and client.remaining == 1
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['temperature'\]"):
        resolve_driver("llm_adapter", "scripted", temperature=0.1)


def test_extract_and_validate_replies() -> None:
    assert extract_json('```json\n{"x": 1, "y": 2}\n```') == '{"x": 1, "y": 2}'
    assert extract_json('Here it is: {"x": 1, "y": 2} hope it helps') == '{"x": 1, "y": 2}'
    text, errors = validate_reply('{"x": 1}', Point)
    assert errors == ["y: Field required"]
    text, errors = validate_reply('{"x": 1, "y": 2}', Point)
    assert errors == [] and Point.model_validate_json(text) == Point(x=1, y=2)
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "n": {"enum": [1, 2]},
        },
        "required": ["tags"],
        "additionalProperties": False,
    }
    _, errors = validate_reply('{"tags": ["a", 3], "n": 5, "extra": true}', schema)
    assert errors == ["$.tags[1]: expected string, got integer", "$.n: must be one of [1, 2]",
                      "$.extra: unexpected field"]  # fmt: skip
    _, errors = validate_reply("not json", schema)
    assert errors[0].startswith("not valid JSON")
    _, errors = validate_reply("true", {"type": "integer"})
    assert errors == ["$: expected integer, got boolean"]


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (LLMError("x"), RuntimeError),
        (LLMConfigurationError("x"), ValueError),
        (LLMHTTPError("x", status=500), RuntimeError),
        (LLMConnectionError("x"), ConnectionError),
        (LLMTimeoutError("x"), TimeoutError),
        (LLMStreamError("x", partial="p"), RuntimeError),
        (LLMReplyError("x", text="t", errors=[]), RuntimeError),
        (LLMTruncationError("x", text="t", errors=[], max_tokens=5), LLMReplyError),
        (ScriptExhaustedError("x"), RuntimeError),
    ],
)
def test_llm_errors_are_penguiflow_errors_and_keep_their_builtin_base(
    error: Exception, builtin: type[Exception]
) -> None:
    assert isinstance(error, PenguiFlowError) and isinstance(error, builtin)


def test_the_kernel_keeps_only_provider_neutral_names() -> None:
    assert set(penguiflow.llm.__all__) == {
        "JSONLLMClient", "LLMConfigurationError", "LLMConnectionError", "LLMError",
        "LLMHTTPError", "LLMMessage", "LLMReplyError", "LLMResponse", "LLMRole",
        "LLMStreamError", "LLMTimeoutError", "LLMUsage", "ResponseFormat",
        "FinishReason", "LLMTruncationError",
        "EmbeddingsClient", "EmbeddingsResponse", "IMAGE_MEDIA_TYPES", "LLMImage", "LLMTool",
        "LLMToolCall", "ToolCallingLLMClient", "ToolChoice", "ToolLike", "tool_definitions",
        "ScriptExhaustedError", "ScriptedCall", "ScriptedLLMClient", "ScriptedReply",
        "HashingEmbeddingsClient",
        "StreamCallback", "extract_json", "normalize_messages", "validate_reply",
    }  # fmt: skip
    for name in penguiflow.llm.__all__:
        assert getattr(penguiflow.llm, name) is not None


@pytest.mark.parametrize(
    ("name", "new_name"),
    [("ProviderClient", "ProviderClient"), ("RetryPolicy", "RetryPolicy"),
     ("repair_instructions", "repair_instructions"), ("http", "HTTPXTransport")],
)  # fmt: skip
def test_a_moved_name_says_where_it_went(name: str, new_name: str) -> None:
    fix = f"`pip install penguiflow-llm-http`, then `from penguiflow_llm_http import {new_name}`"
    with pytest.raises(ImportError) as caught:
        getattr(penguiflow.llm, name)
    assert isinstance(caught.value, PenguiFlowError)
    assert f"penguiflow.llm.{name} moved out of the kernel" in str(caught.value)
    assert fix in str(caught.value)
    # The usual spelling: an AttributeError here would become a bare "cannot import name".
    with pytest.raises(ImportError, match="pip install penguiflow-llm-http"):
        exec(f"from penguiflow.llm import {name}", {})


def test_moved_test_helpers_say_where_they_went() -> None:
    testing = importlib.import_module("penguiflow.testing")
    fix = "then `from penguiflow_llm_http.testing import ScriptedHTTPServer`"
    with pytest.raises(ImportError, match=fix):
        testing.ScriptedHTTPServer  # noqa: B018
    assert "ScriptedHTTPServer" not in testing.__all__


def test_unknown_names_are_still_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        penguiflow.llm.Nope  # noqa: B018
    assert not hasattr(penguiflow.llm, "Nope")


def test_the_kernel_never_imports_httpx() -> None:
    """Not even lazily inside a function: the kernel does not depend on httpx."""
    importers = []
    for path in sorted(KERNEL_SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            if any(m == "httpx" or m.startswith("httpx.") for m in modules):
                importers.append(f"{path.relative_to(KERNEL_SRC)}:{node.lineno}")
    assert importers == []
    assert not (KERNEL_SRC / "llm" / "http.py").exists()
