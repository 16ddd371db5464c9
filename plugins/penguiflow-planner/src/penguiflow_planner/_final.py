"""A `final_response`: its structured part checked, reflected on, turned into the payload.

The payload is PenguiFlow's `FinalPayload.model_dump()`: `raw_answer`, and whatever the model
gave of `confidence`, `route`, `suggested_actions`, `requires_followup`, `warnings`,
`language`; `artifacts` and `sources` come from the run's tools (the trajectory), and every
other field of the action (the answer included) is kept in `extra`. A field with a value that
does not fit (a confidence of 7) is dropped with a warning rather than failing the answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ._actions import PlannerAction
from ._events import EmitFn
from ._failures import is_failure
from ._llm_calls import LLMReply, call_client
from ._prompt import build_messages
from ._results import FinalPayload, Source, SuggestedAction
from ._trajectory import Trajectory
from .prompts import PromptTemplates

__all__ = ["build_payload", "ensure_structured"]

logger = logging.getLogger("penguiflow.planner")

#: finish fields FinalPayload takes from the action (the rest goes to `extra`)
_TAKEN = ("confidence", "route", "suggested_actions", "requires_followup", "warnings",
          "language", "structured")  # fmt: skip
_FIELD_TYPES: dict[str, TypeAdapter[Any]] = {
    "confidence": TypeAdapter(float),
    "route": TypeAdapter(str),
    "suggested_actions": TypeAdapter(list[SuggestedAction]),
    "requires_followup": TypeAdapter(bool),
    "warnings": TypeAdapter(list[str]),
    "language": TypeAdapter(str),
    "structured": TypeAdapter(dict[str, Any]),
}


def _answer_text(answer: Any) -> str:
    if isinstance(answer, str):
        return answer
    return json.dumps(answer, default=str, ensure_ascii=False)


def build_payload(action: PlannerAction, trajectory: Trajectory, answer: str) -> dict[str, Any]:
    """The finish payload for `action` answering `answer`."""
    args = dict(action.args)
    warnings: list[str] = []
    fields: dict[str, Any] = {}
    for name in _TAKEN:
        if name not in args or args[name] is None:
            continue
        try:
            fields[name] = _FIELD_TYPES[name].validate_python(args[name])
        except ValidationError:
            warnings.append(f"final_response field {name!r} was not valid and was left out")
    confidence = fields.get("confidence")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        del fields["confidence"]
        warnings.append("final_response confidence must be between 0 and 1; left out")
    sources: list[Source] = []
    for source in trajectory.sources:
        try:
            sources.append(Source.model_validate(source))
        except ValidationError:
            continue
    payload = FinalPayload(
        raw_answer=answer,
        artifacts=dict(trajectory.artifacts),
        sources=sources,
        **fields,
        extra={
            key: value for key, value in args.items() if key not in _TAKEN and key != "raw_answer"
        },
    )
    if warnings:
        payload.warnings = [*payload.warnings, *warnings]
    return payload.model_dump(mode="json")


async def ensure_structured(
    action: PlannerAction,
    trajectory: Trajectory,
    *,
    model: type[BaseModel],
    retries: int,
    client: Any,
    system: str,
    templates: PromptTemplates,
    emit: EmitFn,
    account: Callable[[LLMReply], None],
    action_seq: int,
    timeout_s: float,
) -> None:
    """Make `action.args["structured"]` an instance of `model` (as JSON), asking the model
    to repair it up to `retries` times. When it still does not fit, `structured` is removed
    (the payload never carries unchecked data) and a warning says so. Mutates `action`."""

    def check(candidate: Any) -> tuple[dict[str, Any] | None, str | None]:
        if candidate is None:
            return None, "structured payload missing from final_response args"
        try:
            return model.model_validate(candidate).model_dump(mode="json"), None
        except ValidationError as exc:
            problems = exc.errors(include_url=False, include_context=False, include_input=False)
            return None, "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in problems
            )

    validated, error = check(action.args.get("structured"))
    name = model.__name__
    if validated is not None:
        action.args["structured"] = validated
        await emit(
            "final_response_structured_validated",
            {"model": name, "action_seq": action_seq, "repaired": False},
        )
        return
    schema = model.model_json_schema()
    for attempt in range(1, retries + 1):
        await emit(
            "final_response_structured_repair_attempt",
            {"model": name, "attempt": attempt, "action_seq": action_seq,
             "error": (error or "")[:500]},
        )  # fmt: skip
        request = templates.render(
            "structured_repair",
            schema=json.dumps(schema, sort_keys=True),
            error=error or "structured payload missing",
            answer=_answer_text(action.answer),
        )
        messages = [*build_messages(system, trajectory, templates), {"role": "user",
                    "content": request}]  # fmt: skip
        try:
            reply = await call_client(
                client,
                messages,
                response_format={"type": "json_object"},
                timeout_s=timeout_s,
            )
        except BaseException as exc:
            if not is_failure(exc):
                raise
            error = f"the repair call failed: {type(exc).__name__}"
            continue
        account(reply)
        try:
            candidate = json.loads(reply.text)
        except ValueError:
            error = "the repair reply was not JSON"
            continue
        if isinstance(candidate, Mapping) and "structured" in candidate:
            candidate = candidate["structured"]
        validated, error = check(candidate)
        if validated is not None:
            action.args["structured"] = validated
            await emit(
                "final_response_structured_validated",
                {"model": name, "action_seq": action_seq, "repaired": True},
            )
            return
    action.args.pop("structured", None)
    warning = f"structured answer did not match {name}: {error}"
    action.args["warnings"] = [*list(action.args.get("warnings") or []), warning]
    await emit(
        "final_response_structured_degraded",
        {"model": name, "action_seq": action_seq, "error": (error or "")[:500]},
    )
