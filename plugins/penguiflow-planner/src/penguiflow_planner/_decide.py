"""One decision of the model: the prompt, the call, and reading the reply as an action.

A reply that is not a usable action is shown back to the model with what was wrong (a repair
round), up to `repair_attempts` times; after that the run ends with `repair_failed` (PenguiFlow
would salvage the broken text as an answer; a typed ending is more honest). A failing model call
goes through error recovery: a prompt over the context window gets its large observations
compressed and is tried again, a request the provider refuses becomes an answer that says so,
anything else ends the run (`no_path`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from penguiflow.errors import PenguiFlowError, describe_exception

from ._action_schema import action_response_format
from ._actions import PlannerAction
from ._answer_stream import action_finished, action_started
from ._budgets import BudgetUsage
from ._error_recovery import (
    ErrorRecoveryConfig,
    LLMErrorType,
    classify_llm_error,
    graceful_failure_action,
    provider_message,
)
from ._events import EmitFn
from ._failures import is_failure
from ._llm_calls import LLMReply, call_client
from ._parsing import ActionError, parse_action
from ._prompt import build_messages, repair_message
from ._summarise import compress_observations, estimate_prompt_tokens, summarise_trajectory
from ._trajectory import Trajectory
from .prompts import PromptTemplates

__all__ = ["Decider", "ModelCallFailed", "RepairFailed"]

logger = logging.getLogger("penguiflow.planner")

#: characters of an unusable reply kept in the repair prompt and the finish's payload
_REPLY_CLIP = 2000


class ModelCallFailed(PenguiFlowError):
    """The model call failed (after error recovery); `cause` is what the client raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe_exception(cause))
        self.cause = cause


class RepairFailed(PenguiFlowError):
    """The model's replies stayed unusable for every repair round."""

    def __init__(self, errors: list[str], last_reply: str) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.last_reply = last_reply


def _clip(text: str) -> str:
    if len(text) <= _REPLY_CLIP:
        return text
    return text[:_REPLY_CLIP] + f"... [{len(text) - _REPLY_CLIP} more characters]"


@dataclass
class DecisionInputs:
    """What one decision is asked with."""

    system: str
    tool_names: Sequence[str]
    join_strategies: Sequence[str]
    action_seq: int
    #: the listed tools' argument schemas, by name (the action schema pins each tool's args)
    tool_schemas: Mapping[str, Mapping[str, Any]] | None = None
    #: `final_response_model`'s schema: the action schema then requires `args.structured`
    answer_schema: Mapping[str, Any] | None = None
    #: the most steps a parallel plan may have (`absolute_max_parallel`)
    max_parallel: int | None = None


class Decider:
    """Asks the model for the next action of one run."""

    def __init__(
        self,
        *,
        client: Any,
        summarizer_client: Any,
        templates: PromptTemplates,
        emit: EmitFn,
        usage: BudgetUsage,
        json_schema_mode: bool,
        repair_attempts: int,
        timeout_s: float,
        max_retries: int,
        token_budget: int | None,
        error_recovery: ErrorRecoveryConfig,
        max_reply_bytes: int,
        max_json_depth: int,
        streamer_factory: Any,
        model_name: str | None,
        counters: Any = None,
    ) -> None:
        self._client = client
        self._summarizer = summarizer_client
        self._templates = templates
        self._emit = emit
        self._usage = usage
        self._json_schema_mode = json_schema_mode
        self._repair_attempts = repair_attempts
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._token_budget = token_budget
        self._recovery = error_recovery
        self._max_reply_bytes = max_reply_bytes
        self._max_json_depth = max_json_depth
        self._streamer_factory = streamer_factory
        self._model_name = model_name
        #: the run's repair counters (PenguiFlow's metadata), a Counter
        self._counters = counters if counters is not None else {}
        self._formats: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, Any]] = {}

    def _response_format(self, inputs: DecisionInputs) -> dict[str, Any]:
        """The action schema for this decision; the same tools give the same schema, so it
        is built once per set of visible tools and join strategies."""
        key = (tuple(inputs.tool_names), tuple(inputs.join_strategies))
        cached = self._formats.get(key)
        if cached is None:
            cached = action_response_format(
                list(inputs.tool_names),
                model=self._model_name,
                parallel=True,
                join_strategies=list(inputs.join_strategies),
                tool_schemas=inputs.tool_schemas,
                answer_schema=inputs.answer_schema,
                max_parallel=inputs.max_parallel,
            )
            self._formats[key] = cached
        return cached

    def record_summary_cost(self, cost: float) -> None:
        """Count one summariser call (history summaries, compressed observations)."""
        self._usage.llm_calls += 1
        self._usage.summarizer_llm_calls += 1
        self._usage.cost_usd += cost or 0.0

    def account(self, reply: LLMReply, *, purpose: str = "main") -> None:
        """Count a call's cost and tokens against the run."""
        self._usage.llm_calls += 1
        if purpose == "reflection":
            self._usage.reflection_llm_calls += 1
        elif purpose == "summarizer":
            self._usage.summarizer_llm_calls += 1
        self._usage.cost_usd += reply.cost_usd or 0.0
        if reply.usage is not None:
            self._usage.tokens += reply.usage.total_tokens

    async def messages(self, system: str, trajectory: Trajectory) -> list[dict[str, str]]:
        """The conversation for the next decision; the history is summarised first when it
        is over `token_budget` (PenguiFlow's: a size that triggers a summary, not a cap)."""
        messages = build_messages(system, trajectory, self._templates)
        budget = self._token_budget
        if budget is not None and estimate_prompt_tokens(messages) > budget:
            summarised_at = trajectory.metadata.get("summary_step_count")
            if summarised_at != len(trajectory.steps):
                trajectory.summary = await summarise_trajectory(
                    trajectory,
                    client=self._summarizer,
                    emit=self._emit,
                    record_cost=self.record_summary_cost,
                )
                trajectory.metadata["summary_step_count"] = len(trajectory.steps)
                messages = build_messages(system, trajectory, self._templates)
        return messages

    async def decide(self, trajectory: Trajectory, inputs: DecisionInputs) -> PlannerAction:
        """The next action. Raises `ModelCallFailed` or `RepairFailed`; a run's cancellation
        propagates."""
        base = await self.messages(inputs.system, trajectory)
        response_format: Mapping[str, Any] | None = None
        if self._json_schema_mode:
            response_format = self._response_format(inputs)
        extra: list[dict[str, str]] = []
        errors: list[str] = []
        reply_text = ""
        compressions = 0
        attempt = 0
        while attempt <= self._repair_attempts:
            streamer = self._streamer_factory(inputs.action_seq)
            await action_started(self._emit, action_seq=inputs.action_seq)
            try:
                reply = await call_client(
                    self._client,
                    [*base, *extra],
                    response_format=response_format,
                    stream=streamer is not None,
                    on_stream_chunk=streamer.feed if streamer is not None else None,
                    timeout_s=self._timeout_s,
                    max_retries=self._max_retries,
                )
            except BaseException as exc:
                if not is_failure(exc):
                    raise
                await action_finished(self._emit, action_seq=inputs.action_seq)
                recovered = await self._recover(exc, trajectory, compressions)
                if recovered == "retry":
                    compressions += 1
                    base = await self.messages(inputs.system, trajectory)
                    continue
                if isinstance(recovered, PlannerAction):
                    return recovered
                raise ModelCallFailed(exc) from exc
            self.account(reply)
            reply_text = reply.text
            action: PlannerAction | None = None
            try:
                action = parse_action(
                    reply_text,
                    max_reply_bytes=self._max_reply_bytes,
                    max_depth=self._max_json_depth,
                )
            except ActionError as exc:
                errors = list(exc.errors)
            except Exception as exc:  # reading a reply must not end the run: ask again
                logger.exception("reading the model's reply failed")
                errors = [
                    f"the reply could not be read ({type(exc).__name__}: "
                    f"{describe_exception(exc)}); reply with one short JSON object"
                ]
            if streamer is not None:
                await streamer.finish(action=action)
            await action_finished(self._emit, action_seq=inputs.action_seq)
            if action is not None:
                action.raw_llm_response = reply_text
                self._consume_steering(trajectory)
                return action
            attempt += 1
            self._counters["validation_failures_count"] += 1
            self._counters["repair_attempts"] += 1
            await self._emit(
                "planner_repair_attempt",
                {"attempt": attempt, "errors": errors, "action_seq": inputs.action_seq,
                 "will_retry": attempt <= self._repair_attempts},
            )  # fmt: skip
            extra = [
                {"role": "assistant", "content": _clip(reply_text)},
                repair_message(self._templates, errors),
            ]
        raise RepairFailed(errors, _clip(reply_text))

    def _consume_steering(self, trajectory: Trajectory) -> None:
        """Steering inputs are one-shot: shown to the model by one successful call (the events
        they came from are in `metadata["steering_history"]`)."""
        trajectory.steering_inputs = []

    async def _recover(
        self, exc: BaseException, trajectory: Trajectory, compressions: int
    ) -> str | PlannerAction | None:
        """What error recovery makes of a failed call (PenguiFlow's recovery): `"retry"` when
        the prompt was over the context window and its large observations were compressed; an
        answer that explains the failure when the provider refused the request, or the prompt
        could not be made to fit; None for anything else (the failure stands). Events never
        carry more of the error than its cleaned provider message."""
        if not self._recovery.enabled:
            return None
        kind = classify_llm_error(exc)
        message = provider_message(exc)
        await self._emit(
            "error_recovery_attempt",
            {"error_type": kind.value, "error_message": message, "compress_attempt": compressions},
        )
        if kind is LLMErrorType.BAD_REQUEST_OTHER:
            await self._emit(
                "error_recovery_success", {"error_type": kind.value, "strategy": "graceful_failure"}
            )
            return graceful_failure_action(exc, kind)
        if kind is not LLMErrorType.CONTEXT_LENGTH_EXCEEDED:
            return None
        reason: str
        if compressions >= self._recovery.max_compress_retries:
            reason = "max_compress_retries_exceeded"
        else:
            compressed = await compress_observations(
                trajectory,
                threshold_chars=self._recovery.compression_threshold_chars,
                client=self._summarizer if self._recovery.summarize_on_compress else None,
                summarise=self._recovery.summarize_on_compress,
                emit=self._emit,
                attempt=compressions + 1,
                record_cost=self.record_summary_cost,
            )
            if compressed:
                return "retry"
            reason = "nothing_to_compress"
        await self._emit("error_recovery_failed", {"error_type": kind.value, "reason": reason})
        return graceful_failure_action(exc, kind)
