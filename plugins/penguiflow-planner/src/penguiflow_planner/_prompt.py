"""What the planner sends the model: the system prompt, the conversation, the repair request.

The conversation has PenguiFlow 3.11's shape, so a scripted client written for PenguiFlow reads
it the same way: the system prompt; the read-only memories (`external_memory`, then
`conversation_memory`, lifted out of `llm_context`) as their own system messages; the user turn
as JSON (`{"context": ..., "query": ...}`); then per step the action as compact JSON (sorted
keys, `next_node` and `args`) from the assistant and `{"observation": ...}` or
`{"error": ...}` from the user; then steering inputs and the answer to a pause. Every text comes
from a `PromptTemplates` template.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

from penguiflow.catalog import NodeSpec

from ._actions import FINAL_RESPONSE, PARALLEL
from ._tool_config import ToolExamplesConfig
from ._trajectory import Trajectory, TrajectoryStep
from .prompts import SYSTEM_SECTIONS, PromptTemplates

__all__ = [
    "DEFAULT_MAX_OBSERVATION_CHARS",
    "build_messages",
    "build_system_prompt",
    "compact_json",
    "observation_text",
    "repair_message",
    "tool_records",
]

#: Characters of one tool result (or error, or background result) shown to the model. The
#: executor's guardrails usually shrink results well before this; the limit is the last line
#: of defence, so that one huge result cannot push the rest of the run out of the context.
DEFAULT_MAX_OBSERVATION_CHARS = 20_000

#: Tool examples tagged so go first (PenguiFlow's order): the smallest call, a common one, an
#: edge case; untagged examples follow in their own order.
_EXAMPLE_PRIORITY = {"minimal": 0, "common": 1, "edge-case": 2}

#: `llm_context` keys shown as read-only memory messages rather than as context.
_MEMORY_KEYS = ("external_memory", "conversation_memory")


def compact_json(value: Any) -> str:
    """`value` as one line of JSON, keys sorted, non-ASCII kept (PenguiFlow's message form)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# -- tools ------------------------------------------------------------------------------------


def _example_rank(indexed: tuple[int, Mapping[str, Any]]) -> tuple[int, int]:
    index, example = indexed
    tags = example.get("tags") or ()
    ranks = [_EXAMPLE_PRIORITY[t] for t in tags if isinstance(t, str) and t in _EXAMPLE_PRIORITY]
    return (min(ranks, default=len(_EXAMPLE_PRIORITY)), index)


def tool_records(
    specs: Sequence[NodeSpec],
    examples: ToolExamplesConfig | None,
    cache: dict[str, tuple[NodeSpec, dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The prompt's records of `specs` (`NodeSpec.to_tool_record()`), with their examples
    chosen by `examples` (None: `ToolExamplesConfig()`, as PenguiFlow): none when disabled,
    else the best `max_examples_per_tool`, without descriptions unless asked for.

    `cache` (a planner's, by tool name) keeps each spec's record: building one renders its
    JSON schemas, which would otherwise be done again for every tool at every step."""
    config = examples if examples is not None else ToolExamplesConfig()
    records: list[dict[str, Any]] = []
    for spec in specs:
        cached = cache.get(spec.name) if cache is not None else None
        if cached is not None and cached[0] is spec:
            record = dict(cached[1])
        else:
            record = spec.to_tool_record()
            if cache is not None:
                cache[spec.name] = (spec, dict(record))
        found = record.pop("examples", None) or []
        if config.enabled and found:
            ranked = [e for _, e in sorted(enumerate(found), key=_example_rank)]
            chosen = []
            for example in ranked[: config.max_examples_per_tool]:
                example = dict(example)
                if not config.include_descriptions:
                    example.pop("description", None)
                chosen.append(example)
            record["examples"] = chosen
        records.append(record)
    return records


def _tool_details(record: Mapping[str, Any]) -> str:
    lines: list[str] = []
    if record.get("tags"):
        lines.append(f"tags: {', '.join(map(str, record['tags']))}")
    if record.get("auth_scopes"):
        lines.append(f"auth scopes: {', '.join(map(str, record['auth_scopes']))}")
    if record.get("cost_hint"):
        lines.append(f"cost: {record['cost_hint']}")
    if record.get("latency_hint_ms") is not None:
        lines.append(f"typical latency: {record['latency_hint_ms']} ms")
    if record.get("safety_notes"):
        lines.append(f"safety: {record['safety_notes']}")
    if record.get("extra"):
        lines.append(f"notes: {compact_json(record['extra'])}")
    for position, example in enumerate(record.get("examples") or ()):
        if position == 0:
            lines.append("examples:")
        text = f"  - args: {compact_json(example.get('args', {}))}"
        if example.get("description"):
            text += f" ({example['description']})"
        lines.append(text)
    return "".join(f"\n  {line}" for line in lines)


def render_tool(templates: PromptTemplates, record: Mapping[str, Any]) -> str:
    """One tool of the catalog, through the `tool` template."""
    out_schema = record.get("out_schema")
    return templates.render(
        "tool",
        name=record["name"],
        desc=str(record.get("desc") or "(no description)"),
        side_effects=record.get("side_effects", "pure"),
        args_schema=compact_json(record.get("args_schema", {})),
        out_schema=compact_json(out_schema) if out_schema is not None else "(not described)",
        details=_tool_details(record),
    )


# -- the system prompt ------------------------------------------------------------------------


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def build_system_prompt(
    templates: PromptTemplates,
    *,
    tool_records: Sequence[Mapping[str, Any]],
    extras: Sequence[str],
    planning_hints: str | None,
    system_prompt_extra: str | None,
    parallel: bool,
    join_strategies: Sequence[str],
    guidance: Sequence[str],
    constraints: Sequence[str],
    final_response_schema: Mapping[str, Any] | None,
    current_date: str | None = None,
) -> str:
    """The system prompt: the sections of `prompts.SYSTEM_SECTIONS` in order, each
    left out when it has nothing to say (no parallel plans, no hints, no constraints...) or
    when its template is empty.

    `tool_records` are the tools the model may call now (`tool_records()`), `extras` the texts
    tool search adds (hints, a directory), `constraints` one line per limit of the run,
    `guidance` the lines adaptive guidance added, `final_response_schema` the JSON schema the
    answer's `structured` object must match. `current_date` (ISO) defaults to today's: a date,
    not a time, so that the prompt stays the same all day (provider prompt caches)."""
    date = current_date or datetime.date.today().isoformat()
    if parallel:
        opcodes = f'"{PARALLEL}" (several tools at once) or "{FINAL_RESPONSE}" (to finish)'
    else:
        opcodes = f'"{FINAL_RESPONSE}" (to finish)'
    tools = "\n".join(render_tool(templates, record) for record in tool_records)
    values: dict[str, dict[str, Any] | None] = {
        "identity": {"date": date},
        "output_format": {"opcodes": opcodes},
        "finishing": {},
        "structured_answer": (
            {"schema": compact_json(final_response_schema)}
            if final_response_schema is not None
            else None
        ),
        "parallel": (
            {"join_strategies": ", ".join(join_strategies) or "(none here)"} if parallel else None
        ),
        "tools": {"tools": tools or "(none: answer from what you know and the context)"},
        "tool_extras": {"extras": "\n\n".join(extras)} if extras else None,
        "hints": {"hints": planning_hints} if planning_hints else None,
        "constraints": {"constraints": _bullets(constraints)} if constraints else None,
        "guidance": {"guidance": _bullets(guidance)} if guidance else None,
        "extra": {"extra": system_prompt_extra} if system_prompt_extra else None,
    }
    sections = []
    for name in SYSTEM_SECTIONS:
        section_values = values[name]
        if section_values is None or not templates.get(name):
            continue
        sections.append(templates.render(name, **section_values))
    return "\n\n".join(sections)


# -- the conversation -------------------------------------------------------------------------


def observation_text(
    value: Any,
    limit: int = DEFAULT_MAX_OBSERVATION_CHARS,
    templates: PromptTemplates | None = None,
) -> str:
    """`value` as text (JSON unless it is a string), clipped to `limit` characters with a note
    that says how much was left out and what the limit is."""
    text = value if isinstance(value, str) else compact_json(value)
    if len(text) <= limit:
        return text
    note = (templates or PromptTemplates()).render(
        "clipped", limit=limit, omitted=len(text) - limit
    )
    return text[:limit] + note


def _clip_fields(payload: Mapping[str, Any], limit: int, templates: PromptTemplates) -> str:
    """`payload` as JSON, each field over `limit` characters replaced by its clipped text."""
    shown: dict[str, Any] = {}
    for key, value in payload.items():
        text = value if isinstance(value, str) else compact_json(value)
        shown[key] = observation_text(value, limit, templates) if len(text) > limit else value
    return compact_json(shown)


def _action_json(step: TrajectoryStep) -> str:
    return compact_json({"next_node": step.action.next_node, "args": dict(step.action.args)})


def _step_messages(
    step: TrajectoryStep, limit: int, templates: PromptTemplates
) -> list[dict[str, str]]:
    result = step.serialise_for_llm()
    payload = dict(result) if isinstance(result, Mapping) else {"observation": result}
    if step.error is not None and step.failure:
        payload["failure"] = dict(step.failure)
    return [
        {"role": "assistant", "content": _action_json(step)},
        {"role": "user", "content": _clip_fields(payload, limit, templates)},
    ]


def _user_turn(trajectory: Trajectory, templates: PromptTemplates) -> tuple[list[Any], str]:
    """The memories lifted out of `llm_context` (in message order) and the user turn."""
    context = dict(trajectory.llm_context or {})
    memories = [(key, context.pop(key, None)) for key in _MEMORY_KEYS]
    context.pop("query", None)  # the query is given once, as the query
    request: dict[str, Any] = {"query": trajectory.query}
    if context:
        request["context"] = context
    turn = templates.render(
        "user",
        request=compact_json(request),
        query=trajectory.query,
        context=compact_json(context) if context else "{}",
    )
    return memories, turn


def _summarised_steps(trajectory: Trajectory) -> int:
    """How many steps the summary stands for: all but the last one there was when it was
    written (`metadata["summary_step_count"]`, set by the loop), else all but the last."""
    count = trajectory.metadata.get("summary_step_count")
    total = len(trajectory.steps)
    if isinstance(count, int) and not isinstance(count, bool) and 0 < count <= total:
        return count - 1
    return max(total - 1, 0)


def build_messages(
    system: str,
    trajectory: Trajectory,
    templates: PromptTemplates,
    *,
    max_observation_chars: int = DEFAULT_MAX_OBSERVATION_CHARS,
) -> list[dict[str, str]]:
    """The messages for the model's next decision.

    When `trajectory.summary` is set it stands for the steps before the last one there was
    when it was written (PenguiFlow's condensed form; `metadata["summary_step_count"]` says
    how many steps there were then, else the summary stands for all but the last step); the
    later steps follow it. Unconsumed background
    results come last; marking them consumed is the loop's business. Each tool result, error
    and background result is clipped to `max_observation_chars`."""
    limit = max_observation_chars
    messages: list[dict[str, str]] = [{"role": "system", "content": system}]
    memories, turn = _user_turn(trajectory, templates)
    for key, memory in memories:
        if memory is not None:
            content = templates.render(key, memory=compact_json(memory))
            messages.append({"role": "system", "content": content})
    messages.append({"role": "user", "content": turn})
    steps = trajectory.steps
    if trajectory.summary is not None:
        summary = trajectory.summary.model_dump(mode="json", exclude_defaults=True)
        content = templates.render("summary", summary=compact_json(summary))
        messages.append({"role": "system", "content": content})
        steps = steps[_summarised_steps(trajectory) :]
    for step in steps:
        messages += _step_messages(step, limit, templates)
    for text in trajectory.steering_inputs:
        messages.append({"role": "user", "content": templates.render("steering_input", input=text)})
    if trajectory.resume_user_input:
        content = templates.render("resume_input", input=trajectory.resume_user_input)
        messages.append({"role": "user", "content": content})
    pending = trajectory.get_unconsumed_background()
    if pending:
        results = []
        for result in pending:
            shown = result.to_dict()
            shown.pop("consumed", None)
            results.append(shown)
        content = templates.render(
            "background_results", results=observation_text(results, limit, templates)
        )
        messages.append({"role": "user", "content": content})
    return messages


def repair_message(templates: PromptTemplates, errors: Sequence[str]) -> dict[str, str]:
    """The message that asks the model again after a reply that could not be used, listing
    what was wrong with it."""
    listed = _bullets(errors) if errors else "- the reply was not one JSON action"
    return {"role": "user", "content": templates.render("repair", errors=listed)}
