"""What a run did, step by step (PenguiFlow 3.11's `Trajectory`), and its JSON form.

A trajectory is saved with every pause and returned in every finish's metadata, so it must
survive JSON: `serialise()` gives plain JSON (the caller's `tool_context` only when all of it is
JSON, since it may hold clients and secrets that cannot be saved), and `from_serialised()` reads
it back, including the older forms of a step's action (`PlannerAction.from_legacy`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from ._actions import PlannerAction

__all__ = [
    "BackgroundTaskResult",
    "Trajectory",
    "TrajectoryStep",
    "TrajectorySummary",
    "extract_background_results",
    "json_copy",
]

#: characters of an observation kept in a rule-based summary's digest
_DIGEST_CHARS = 400


def json_copy(value: Any) -> Any:
    """`value` as plain JSON (a deep copy), or None when any part of it is not JSON."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return None


def _jsonable(value: Any) -> Any:
    """`value` with Pydantic models dumped and anything else that is not JSON as text, for
    observations (a tool's output must never make a trajectory unsavable)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value, default=str))


class TrajectorySummary(BaseModel):
    """A compact account of a long run, given to the model instead of every step."""

    goals: list[str] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    pending: list[str] = Field(default_factory=list)
    last_output_digest: str | None = None
    note: str | None = None


@dataclass
class BackgroundTaskResult:
    """The result of a background task, waiting for the model to take it into account."""

    task_id: str
    group_id: str | None = None
    status: Literal["completed", "failed"] = "completed"
    summary: str | None = None
    payload: Any = None
    facts: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    consumed: bool = False
    completed_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "group_id": self.group_id,
            "status": self.status,
            "summary": self.summary,
            "payload": _jsonable(self.payload),
            "facts": _jsonable(self.facts),
            "artifacts": _jsonable(self.artifacts),
            "consumed": self.consumed,
            "completed_at": self.completed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackgroundTaskResult:
        status = data.get("status", "completed")
        return cls(
            task_id=str(data["task_id"]),
            group_id=data.get("group_id"),
            status="failed" if status == "failed" else "completed",
            summary=data.get("summary"),
            payload=data.get("payload"),
            facts=dict(data.get("facts") or {}),
            artifacts=list(data.get("artifacts") or []),
            consumed=bool(data.get("consumed", False)),
            completed_at=float(data.get("completed_at") or time.time()),
        )


@dataclass
class TrajectoryStep:
    """One step: the action taken and what came of it. `observation` is the tool's result
    as recorded; `llm_observation` what the model was shown of it (clamped, artifacts
    replaced by references) when that differs; `error` a failure the model may fix;
    `failure` structured detail of it; `streams` the chunks the tool streamed, by stream."""

    action: PlannerAction
    observation: Any | None = None
    llm_observation: Any | None = None
    error: str | None = None
    failure: Mapping[str, Any] | None = None
    streams: Mapping[str, Sequence[Mapping[str, Any]]] | None = None

    def dump(self) -> dict[str, Any]:
        """The step as JSON (its action in the on-disk form PenguiFlow writes)."""
        data: dict[str, Any] = {
            "action": self.action.legacy_dump(),
            "observation": _jsonable(self.observation),
            "error": self.error,
            "failure": _jsonable(dict(self.failure)) if self.failure is not None else None,
        }
        if self.llm_observation is not None:
            data["llm_observation"] = _jsonable(self.llm_observation)
        if self.streams:
            data["streams"] = _jsonable({k: list(v) for k, v in self.streams.items()})
        return data

    @classmethod
    def from_dump(cls, data: Mapping[str, Any]) -> TrajectoryStep:
        action = data.get("action") or {}
        return cls(
            action=PlannerAction.from_legacy(dict(action)),
            observation=data.get("observation"),
            llm_observation=data.get("llm_observation"),
            error=data.get("error"),
            failure=data.get("failure"),
            streams=data.get("streams"),
        )

    def serialise_for_llm(self) -> Any:
        """What the model is shown of this step's result."""
        if self.error is not None:
            return {"error": self.error}
        shown = self.llm_observation if self.llm_observation is not None else self.observation
        return {"observation": _jsonable(shown)}


@dataclass
class Trajectory:
    """A run's query, its two contexts, and its steps.

    `llm_context` is shown to the model (JSON only); `tool_context` is for tools only and is
    never shown to the model. `metadata` keeps the run's counters and notes; `summary`, when
    set, stands in for the older steps in prompts."""

    query: str
    llm_context: Mapping[str, Any] | None = None
    tool_context: dict[str, Any] | None = None
    input_parts: tuple[Any, ...] = ()
    artifacts: dict[str, Any] = field(default_factory=dict)
    sources: list[Mapping[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    steps: list[TrajectoryStep] = field(default_factory=list)
    summary: TrajectorySummary | None = None
    hint_state: dict[str, Any] = field(default_factory=dict)
    resume_user_input: str | None = None
    steering_inputs: list[str] = field(default_factory=list)
    background_results: dict[str, BackgroundTaskResult] = field(default_factory=dict)

    # -- JSON ---------------------------------------------------------------------------------

    def serialise(self) -> dict[str, Any]:
        """Plain JSON: the `tool_context` only when all of it is JSON (None otherwise: pass it
        again to `resume`), observations that are not JSON as text."""
        return {
            "query": self.query,
            "llm_context": _jsonable(dict(self.llm_context)) if self.llm_context else None,
            "tool_context": json_copy(self.tool_context) if self.tool_context else None,
            "input_parts": _jsonable(list(self.input_parts)),
            "artifacts": _jsonable(self.artifacts),
            "sources": _jsonable([dict(s) for s in self.sources]),
            "metadata": _jsonable(self.metadata),
            "steps": [step.dump() for step in self.steps],
            "summary": self.summary.model_dump(mode="json") if self.summary else None,
            "hint_state": _jsonable(self.hint_state),
            "resume_user_input": self.resume_user_input,
            "steering_inputs": list(self.steering_inputs),
            "background_results": {
                key: result.to_dict() for key, result in self.background_results.items()
            },
        }

    @classmethod
    def from_serialised(cls, data: Mapping[str, Any]) -> Trajectory:
        summary = data.get("summary")
        return cls(
            query=str(data.get("query", "")),
            llm_context=dict(data["llm_context"]) if data.get("llm_context") else None,
            tool_context=dict(data["tool_context"]) if data.get("tool_context") else None,
            input_parts=tuple(data.get("input_parts") or ()),
            artifacts=dict(data.get("artifacts") or {}),
            sources=list(data.get("sources") or []),
            metadata=dict(data.get("metadata") or {}),
            steps=[TrajectoryStep.from_dump(step) for step in data.get("steps") or ()],
            summary=TrajectorySummary.model_validate(summary) if summary else None,
            hint_state=dict(data.get("hint_state") or {}),
            resume_user_input=data.get("resume_user_input"),
            steering_inputs=list(data.get("steering_inputs") or []),
            background_results={
                key: BackgroundTaskResult.from_dict(value)
                for key, value in (data.get("background_results") or {}).items()
            },
        )

    def to_history(self) -> list[dict[str, Any]]:
        """The steps as JSON, oldest first (what `PlannerFinish.metadata["steps"]` holds)."""
        return [step.dump() for step in self.steps]

    # -- reading ------------------------------------------------------------------------------

    def last_observation(self) -> Any:
        """The result of the last step that did not fail, or None."""
        for step in reversed(self.steps):
            if step.error is None and step.observation is not None:
                return step.observation
        return None

    def compress(self) -> TrajectorySummary:
        """A rule-based summary (no model call): the query as the goal, the last result or
        error as the facts, a failed tool as pending work."""
        facts: dict[str, Any] = {}
        pending: list[str] = []
        digest: str | None = None
        last = self.steps[-1] if self.steps else None
        if last is not None and last.error is not None:
            facts["last_error"] = last.error
            pending.append(f"retry {last.action.next_node}")
        observation = self.last_observation()
        if observation is not None:
            text = json.dumps(_jsonable(observation), sort_keys=True)
            digest = text[:_DIGEST_CHARS]
            facts.setdefault("last_observation", digest)
        return TrajectorySummary(
            goals=[self.query],
            facts=facts,
            pending=pending,
            last_output_digest=digest,
            note="rule_based",
        )

    # -- background results -------------------------------------------------------------------

    def add_background_result(self, result: BackgroundTaskResult) -> None:
        self.background_results[result.task_id] = result

    def get_unconsumed_background(self) -> list[BackgroundTaskResult]:
        return [r for r in self.background_results.values() if not r.consumed]

    def mark_background_consumed(self, task_ids: Sequence[str] | None = None) -> None:
        """Mark results as taken into account (all of them when `task_ids` is None)."""
        for key, result in self.background_results.items():
            if task_ids is None or key in task_ids:
                result.consumed = True

    def clear_consumed_background(self) -> None:
        self.background_results = {
            key: result for key, result in self.background_results.items() if not result.consumed
        }


#: the llm_context keys PenguiFlow moves into `Trajectory.background_results`
_BACKGROUND_KEYS = ("background_result", "background_results")


def extract_background_results(
    llm_context: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, BackgroundTaskResult]]:
    """`llm_context` without its background-result keys, and the results they held (one
    result, or a list or mapping of them, each a `BackgroundTaskResult` or its dict form)."""
    if not llm_context:
        return (dict(llm_context) if llm_context is not None else None), {}
    cleaned = {k: v for k, v in llm_context.items() if k not in _BACKGROUND_KEYS}
    found: dict[str, BackgroundTaskResult] = {}
    for key in _BACKGROUND_KEYS:
        raw = llm_context.get(key)
        if raw is None:
            continue
        items: list[Any]
        if isinstance(raw, Mapping) and "task_id" not in raw:
            items = list(raw.values())
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            items = [raw]
        for item in items:
            if isinstance(item, BackgroundTaskResult):
                found[item.task_id] = item
            elif isinstance(item, Mapping) and "task_id" in item:
                result = BackgroundTaskResult.from_dict(item)
                found[result.task_id] = result
    return cleaned, found
