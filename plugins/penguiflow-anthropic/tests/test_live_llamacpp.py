"""Live: `AnthropicClient` against llama.cpp's real server, which serves `/v1/messages`.

Started as for the OpenAI adapter's live tests (`tox -e llm-live` runs
`scripts/services/llamacpp.sh`, which sets `PENGUIFLOW_LLAMACPP_URL`); without the variable
these tests skip, unless that env asked for them in CI (`PENGUIFLOW_LLM_LIVE=1` with `CI`).

Structured output is not tested for success here: with SmolLM2's chat template this build of
llama.cpp answers a forced `tool_choice` in plain text and does not continue a prefilled
assistant turn, so neither of the adapter's schema modes is constrained; the OpenAI live
tests cover grammar-constrained output.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from penguiflow_anthropic import AnthropicClient

from penguiflow.llm import LLMTool, LLMTruncationError
from penguiflow.plugins import resolve_driver
from penguiflow.testing import run_async

pytestmark = pytest.mark.live

SLOW_S = 600.0

LONG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"story": {"type": "string", "minLength": 200}},
    "required": ["story"],
}


def server_root() -> str:
    """The server's root URL: the Anthropic adapter adds `/v1/messages` itself."""
    url = os.environ.get("PENGUIFLOW_LLAMACPP_URL", "").strip()
    if url:
        return url.removesuffix("/").removesuffix("/v1")
    reason = (
        "no llama.cpp server: run `tox -e llm-live`, or `bash scripts/services/llamacpp.sh "
        "run -- pytest plugins/penguiflow-anthropic/tests/test_live_llamacpp.py` "
        "(it sets PENGUIFLOW_LLAMACPP_URL)"
    )
    if (
        os.environ.get("CI", "").lower() in ("1", "true", "yes")
        and os.environ.get("PENGUIFLOW_LLM_LIVE") == "1"
    ):
        pytest.fail(reason)
    pytest.skip(reason)


@asynccontextmanager
async def new_client(**options: Any) -> AsyncIterator[AnthropicClient]:
    settings: dict[str, Any] = {"temperature": 0.0, "max_tokens": 24, "max_repairs": 0}
    settings.update(options)
    async with AnthropicClient(
        "local", base_url=server_root(), timeout_s=SLOW_S, **settings
    ) as client:
        yield client


def live(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return run_async(scenario, timeout=SLOW_S)


def test_plain_completion_maps_the_stop_reason_and_counts_cache_reads() -> None:
    async def scenario() -> Any:
        async with new_client(max_tokens=6) as client:
            return await client.complete(messages=[{"role": "user", "content": "Say hello."}])

    response = live(scenario)
    assert response.text
    # llama.cpp answers Anthropic's stop reasons (`max_tokens`, `end_turn`), mapped to ours.
    assert response.finish_reason in ("length", "stop")
    usage = response.usage
    assert usage is not None and usage.output_tokens > 0
    # llama.cpp reports cache_read_input_tokens apart, as Anthropic does: they are in the total.
    assert usage.input_tokens >= usage.cache_read_input_tokens


def test_a_structured_reply_cut_by_max_tokens_raises_truncation() -> None:
    async def scenario() -> None:
        async with new_client(max_tokens=4) as client:
            await client.complete(
                messages=[{"role": "user", "content": "Write a story as JSON."}],
                response_format=LONG_SCHEMA,
            )

    with pytest.raises(LLMTruncationError, match="max_tokens") as info:
        live(scenario)
    assert info.value.max_tokens == 4


def test_streaming_delivers_the_whole_text() -> None:
    pieces: list[str] = []
    done: list[bool] = []

    def collect(piece: str, last: bool) -> None:
        pieces.append(piece)
        done.append(last)

    async def scenario() -> Any:
        async with new_client() as client:
            return await client.complete(
                messages=[{"role": "user", "content": "Count to five."}],
                stream=True,
                on_stream_chunk=collect,
            )

    response = live(scenario)
    assert response.text and "".join(pieces) == response.text
    assert done[-1] is True and len(pieces) > 2
    assert response.finish_reason in ("stop", "length")


def test_native_tool_calling_when_the_template_allows_it() -> None:
    weather = LLMTool(
        name="get_weather",
        description="The current weather in a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    )

    async def scenario() -> Any:
        async with new_client() as client:
            return await client.complete(
                messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                tools=[weather],
                tool_choice="required",
            )

    response = live(scenario)
    if not response.tool_calls:
        pytest.skip(
            "llama.cpp accepted the tools but this model's chat template has no tool-call "
            f"format, so it answered in text (finish_reason {response.finish_reason!r})"
        )
    assert response.tool_calls[0].name == "get_weather"
    assert response.finish_reason == "tool_calls"


def test_the_driver_url_configures_base_url_and_model() -> None:
    base = server_root().removeprefix("http://")

    async def scenario() -> Any:
        built: Any = resolve_driver(
            "llm_adapter", f"anthropic://{base}?model=local", max_tokens=4, timeout_s=SLOW_S
        )
        async with built:
            assert isinstance(built, AnthropicClient)
            return await built.complete(messages=[{"role": "user", "content": "Hi."}])

    assert live(scenario).finish_reason in ("stop", "length")
