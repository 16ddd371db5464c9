"""Keeping the prompt small: the history replaced by a summary, large observations compressed.

Two tools, both PenguiFlow 3.11 behaviour:

- `token_budget`: when the prompt's estimated size (`estimate_prompt_tokens`) is over it, the
  loop shows the model a `TrajectorySummary` instead of every step. `summarise_trajectory` asks
  the summariser model for one (a JSON-schema reply), and falls back to the rule-based
  `Trajectory.compress()` when there is no summariser or it fails.
- error recovery: when the provider says the prompt is over the context window,
  `compress_observations` replaces what the model is shown of each large observation
  (`TrajectoryStep.llm_observation`) with a short summary, keeping the full `observation`.

Events: `trajectory_summarized` (the name PenguiFlow logs it under) and `trajectory_compressed`
(PenguiFlow's), each with the sizes before and after.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from penguiflow.errors import describe_exception

from ._events import EmitFn
from ._failures import UnusableReplyError
from ._llm_calls import call_client
from ._trajectory import Trajectory, TrajectoryStep, TrajectorySummary

__all__ = [
    "COMPRESSED_MARKER",
    "compress_observations",
    "estimate_prompt_tokens",
    "summarise_trajectory",
]

logger = logging.getLogger("penguiflow.planner")

#: the key that marks an observation as compressed (PenguiFlow's `{"_compressed": True, ...}`)
COMPRESSED_MARKER: Final = "_compressed"
#: characters per token in the estimate, and the overhead of each message (PenguiFlow's)
_CHARS_PER_TOKEN: Final = 3.5
_MESSAGE_OVERHEAD: Final = 20
#: most characters of one observation given to the summariser
_SUMMARISER_INPUT_CHARS: Final = 8000
#: characters of one observation kept in the history the summariser reads
_HISTORY_OBSERVATION_CHARS: Final = 2000
#: characters kept of a compressed observation when there is no summary
_DIGEST_CHARS: Final = 400

_SUMMARY_SYSTEM = """\
You condense the working notes of an agent so that it can carry on with less to read.
You receive the user's request, the steps taken so far (each a tool call with its result or
error) and a first rough summary. Reply with one JSON object with these fields:
- goals: what the user wants, as short phrases;
- facts: what has been established, as keys and values; copy identifiers, numbers and names
  exactly, and keep only what the remaining work may need;
- pending: what still has to be done, including any call that failed;
- last_output_digest: the gist of the latest result, in at most about 100 characters;
- note: leave it empty.
Be brief: this summary replaces the steps."""

_OBSERVATION_SYSTEM = """\
You shorten the output of a tool so that an agent can keep reasoning about it. Keep the values
that matter (identifiers, numbers, names, results, errors and warnings) and the shape of the
data when it helps; drop repetition and filler. Reply with the shortened text only, at most
500 characters."""


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """The size of a prompt in tokens, estimated from its characters as PenguiFlow does
    (about 3.5 characters a token, plus a little for each message's role and framing).
    What `token_budget` is compared with."""
    total = 0
    for message in messages:
        content = message.get("content", "")
        role = message.get("role", "")
        total += len(content) if isinstance(content, str) else len(str(content))
        total += len(str(role)) + _MESSAGE_OVERHEAD
    return int(total / _CHARS_PER_TOKEN)


# -- calling a model ---------------------------------------------------------------------------


async def _complete(
    client: Any, messages: list[dict[str, str]], response_format: Mapping[str, Any] | None
) -> tuple[str, float]:
    """One model call: the reply's text and its cost (any planner client: a PenguiFlow
    `JSONLLMClient` returning `str` or `(str, cost)`, or one of ours returning an
    `LLMResponse`)."""
    reply = await call_client(client, messages, response_format=response_format)
    return reply.text, reply.cost_usd


def _strip_fence(text: str) -> str:
    """A reply without the code fence a model may put around JSON."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def _shown(step: TrajectoryStep) -> Any:
    """What the model is shown of a step's result."""
    return step.llm_observation if step.llm_observation is not None else step.observation


def _is_compressed(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(COMPRESSED_MARKER) is True


# -- the history summary -----------------------------------------------------------------------


def _history_for_summariser(trajectory: Trajectory) -> list[dict[str, Any]]:
    """The steps as the summariser reads them: what the model was shown of each result
    (artifacts already replaced by references), clipped, so that summarising a history too
    long for the planner's model does not overflow the summariser's."""
    history: list[dict[str, Any]] = []
    for step in trajectory.steps:
        entry: dict[str, Any] = {"call": step.action.next_node, "args": step.action.args}
        if step.error is not None:
            entry["error"] = _clip(step.error, _HISTORY_OBSERVATION_CHARS)
        else:
            shown = _shown(step)
            text = _json_text(shown)
            entry["result"] = (
                shown
                if len(text) <= _HISTORY_OBSERVATION_CHARS
                else _clip(text, _HISTORY_OBSERVATION_CHARS)
            )
        history.append(entry)
    return history


async def summarise_trajectory(
    trajectory: Trajectory,
    *,
    client: Any | None,
    emit: EmitFn,
    record_cost: Callable[[float], None] | None = None,
) -> TrajectorySummary:
    """A new summary of the run so far, set as `trajectory.summary` and returned.

    Each call writes a new one; when to call is the loop's business (PenguiFlow keeps a
    summary until the next step is added). The summariser model `client` writes it (asked
    for `TrajectorySummary`'s JSON schema; its `note` is `"llm"`); without a client, or
    when the call or its reply fails, the rule-based
    `trajectory.compress()` is used (`note` `"rule_based"`, or `"rule_based_fallback"` after a
    failure, which is logged). `record_cost` receives the model call's cost. Emits
    `trajectory_summarized` with `method`, `steps`, `history_chars` and `summary_chars`."""
    summary = trajectory.compress()
    method = "rule_based"
    history = _history_for_summariser(trajectory)
    if client is not None:
        messages = [
            {"role": "system", "content": _SUMMARY_SYSTEM},
            {
                "role": "user",
                "content": _json_text(
                    {
                        "query": trajectory.query,
                        "steps": history,
                        "rough_summary": summary.model_dump(mode="json"),
                    }
                ),
            },
        ]
        response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": "trajectory_summary",
                "schema": TrajectorySummary.model_json_schema(),
            },
        }
        try:
            text, cost = await _complete(client, messages, response_format)
            if record_cost is not None:
                record_cost(cost)
            written = TrajectorySummary.model_validate_json(_strip_fence(text))
        except Exception as exc:
            logger.warning(
                "the summariser model failed (%s); using the rule-based summary",
                describe_exception(exc),
            )
            summary.note = "rule_based_fallback"
            method = "rule_based_fallback"
        else:
            written.note = written.note or "llm"
            summary, method = written, "llm"
    trajectory.summary = summary
    await emit(
        "trajectory_summarized",
        {
            "method": method,
            "steps": len(trajectory.steps),
            "history_chars": len(_json_text(trajectory.to_history())),
            "summary_chars": len(summary.model_dump_json()),
        },
    )
    return summary


# -- compressing large observations ------------------------------------------------------------


async def _summarise_observation(
    client: Any, tool: str, text: str, record_cost: Callable[[float], None] | None
) -> str:
    messages = [
        {"role": "system", "content": _OBSERVATION_SYSTEM},
        {
            "role": "user",
            "content": f"Tool: {tool}\nOutput:\n{_clip(text, _SUMMARISER_INPUT_CHARS)}",
        },
    ]
    reply, cost = await _complete(client, messages, None)
    if record_cost is not None:
        record_cost(cost)
    reply = reply.strip()
    if not reply:
        raise UnusableReplyError("the summariser gave an empty summary")
    return reply


def _steps_size(trajectory: Trajectory) -> int:
    """Characters of the model's view of the steps (actions and what it is shown)."""
    total = 0
    for step in trajectory.steps:
        total += len(_json_text({"next_node": step.action.next_node, "args": step.action.args}))
        total += len(_json_text(step.error if step.error is not None else _shown(step)))
    return total


async def compress_observations(
    trajectory: Trajectory,
    *,
    threshold_chars: int,
    client: Any | None,
    summarise: bool,
    emit: EmitFn,
    reason: str = "context_length",
    attempt: int | None = None,
    record_cost: Callable[[float], None] | None = None,
) -> int:
    """Shrink what the model is shown of every observation longer than `threshold_chars`
    (as JSON) and return how many were shrunk.

    The step's `llm_observation` becomes `{"_compressed": True, "summary": ...,
    "original_chars": n}`; the full `observation` is kept. The summary is written by `client`
    when `summarise` is set (PenguiFlow's `summarize_on_compress`), else, or when that call
    fails, it is the observation's first characters. Steps that failed, and observations
    already compressed, are left alone. Emits `trajectory_compressed` (with `reason`,
    `attempt`, `steps_compressed` and the sizes before and after) when any was."""
    before = _steps_size(trajectory)
    compressed = 0
    for step in trajectory.steps:
        shown = _shown(step)
        if step.error is not None or shown is None or _is_compressed(shown):
            continue
        text = _json_text(shown)
        if len(text) <= threshold_chars:
            continue
        summary: str | None = None
        if summarise and client is not None:
            try:
                summary = await _summarise_observation(
                    client, step.action.next_node, text, record_cost
                )
            except Exception as exc:
                logger.warning(
                    "summarising the result of %s failed (%s); clipping it instead",
                    step.action.next_node,
                    describe_exception(exc),
                )
        if summary is None:
            summary = _clip(text, _DIGEST_CHARS)
        step.llm_observation = {
            COMPRESSED_MARKER: True,
            "summary": summary,
            "original_chars": len(text),
        }
        compressed += 1
    if compressed:
        extra: dict[str, Any] = {
            "reason": reason,
            "steps_compressed": compressed,
            "original_size_chars": before,
            "compressed_size_chars": _steps_size(trajectory),
        }
        if attempt is not None:
            extra["attempt"] = attempt
        await emit("trajectory_compressed", extra)
    return compressed
