"""What an `llm.call` event says about a reply, in the OpenTelemetry GenAI conventions.

The attribute names are the conventions' (`gen_ai.system`, `gen_ai.request.model`,
`gen_ai.response.model`, `gen_ai.response.finish_reasons`), so an exporter passes them on
as they are; token counts and cost are measurements, since metrics are made of them.
"""

from __future__ import annotations

from penguiflow.llm import LLMResponse, LLMUsage
from penguiflow.observability import Observation, capture_content, clip_content

__all__ = ["gen_ai_system", "record_response", "record_usage"]


def gen_ai_system(codec_name: str) -> str:
    """The GenAI `gen_ai.system` value for a codec's display name: "OpenAI-compatible" is
    "openai", "Anthropic" is "anthropic" (the conventions' lower-case provider names)."""
    first = codec_name.strip().split("-", 1)[0].split(" ", 1)[0]
    return first.lower() or "unknown"


def record_usage(unit: Observation, usage: LLMUsage | None, cost_usd: float | None) -> None:
    """Token counts (cache reads and writes included) and cost as measurements."""
    if usage is not None:
        unit.measurements["input_tokens"] = float(usage.input_tokens)
        unit.measurements["output_tokens"] = float(usage.output_tokens)
        unit.measurements["cache_read_tokens"] = float(usage.cache_read_input_tokens)
        unit.measurements["cache_creation_tokens"] = float(usage.cache_creation_input_tokens)
    if cost_usd is not None:
        unit.measurements["cost_usd"] = float(cost_usd)


def record_response(unit: Observation, response: LLMResponse) -> None:
    """The reply's model, finish reason, usage and cost; its text only with content capture
    on (`PENGUIFLOW_CAPTURE_CONTENT`), clipped."""
    if response.model:
        unit.attributes["gen_ai.response.model"] = response.model
    if response.finish_reason:
        unit.attributes["gen_ai.response.finish_reasons"] = (response.finish_reason,)
    if response.tool_calls:
        unit.attributes["tool_calls"] = len(response.tool_calls)
    record_usage(unit, response.usage, response.cost_usd)
    if capture_content():
        output: dict[str, object] = {"role": "assistant", "content": response.text}
        if response.tool_calls:
            output["tool_calls"] = [
                {"id": call.id, "name": call.name, "arguments": call.arguments}
                for call in response.tool_calls
            ]
        unit.attributes["gen_ai.output.messages"] = clip_content([output])
