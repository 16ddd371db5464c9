"""The messages the planner sends the model each step."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from penguiflow.catalog import NodeSpec
from penguiflow.llm import LLMMessage

from ._trajectory import Trajectory, TrajectoryStep

__all__ = ["observation_text", "step_messages", "system_prompt"]

_MAX_OBSERVATION_CHARS = 4000


def system_prompt(
    catalog: Sequence[NodeSpec],
    *,
    parallel: bool,
    joins: Sequence[str],
    constraints: Sequence[str],
    instructions: str | None,
) -> str:
    tools = json.dumps([spec.to_tool_record() for spec in catalog], indent=None)
    lines = [
        instructions
        or "You are a planner. Solve the user's task by calling tools one step at a time, "
        "reading each result, then answering.",
        f"Tools (JSON):\n{tools}",
        "Reply with exactly one JSON object and nothing else. Either call a tool:",
        '{"thought": "why", "next_node": "<tool name>", '
        '"args": {<arguments matching its args_schema>}}',
    ]
    if parallel:
        lines += [
            "or call independent tools at once, then combine their results with a join "
            f"strategy ({', '.join(joins)}):",
            '{"thought": "why", "plan": [{"node": "<tool>", "args": {...}}, ...], '
            '"join": "append"}',
        ]
    lines += [
        "or finish with the answer:",
        '{"thought": "why", "next_node": null, "args": {"answer": "<the final answer>"}}',
    ]
    if constraints:
        lines.append("Constraints:\n" + "\n".join(f"- {c}" for c in constraints))
    return "\n".join(lines)


def observation_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > _MAX_OBSERVATION_CHARS:
        text = (
            text[:_MAX_OBSERVATION_CHARS]
            + f"... [{len(text) - _MAX_OBSERVATION_CHARS} more characters]"
        )
    return text


def _step_messages(step: TrajectoryStep) -> list[LLMMessage]:
    if step.kind == "repair":
        errors = "\n".join(f"- {e}" for e in (step.observation or {}).get("errors", []))
        return [
            LLMMessage(role="assistant", content=str((step.observation or {}).get("reply", ""))),
            LLMMessage(
                role="user",
                content=f"That reply was not a usable action:\n{errors}\nReply again with one "
                "JSON object.",
            ),
        ]
    if step.kind == "reflection":
        return [
            LLMMessage(
                role="user",
                content="A reviewer did not accept the answer: "
                f"{observation_text(step.observation)}. Continue and answer again.",
            )
        ]
    if step.kind == "pause":
        return []
    action = json.dumps(step.action or {})
    result = (
        f"Error: {step.error}" if step.error is not None else observation_text(step.observation)
    )
    label = "Human decision" if step.kind == "resume" else "Observation"
    return [
        LLMMessage(role="assistant", content=action),
        LLMMessage(role="user", content=f"{label}: {result}"),
    ]


def step_messages(
    system: str, history: Sequence[LLMMessage], trajectory: Trajectory
) -> list[LLMMessage]:
    task = trajectory.query
    if trajectory.context:
        task += f"\n\nContext: {json.dumps(trajectory.context, default=str)}"
    messages = [LLMMessage(role="system", content=system), *history]
    messages.append(LLMMessage(role="user", content=task))
    for step in trajectory.steps:
        messages += _step_messages(step)
    return messages
