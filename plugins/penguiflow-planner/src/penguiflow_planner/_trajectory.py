"""What a run did, step by step; serialises to JSON and back (to pause, resume, inspect)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["StepKind", "Trajectory", "TrajectoryStep"]

StepKind = Literal["tool", "parallel", "repair", "pause", "resume", "reflection", "finish"]


class TrajectoryStep(BaseModel):
    kind: StepKind
    action: dict[str, Any] | None = None
    observation: Any = None
    error: str | None = None
    duration_s: float = 0.0
    #: tokens the model used for this step (input, output), when reported
    usage: dict[str, int] | None = None


class Trajectory(BaseModel):
    query: str
    context: dict[str, Any] = Field(default_factory=dict)
    steps: list[TrajectoryStep] = Field(default_factory=list)

    def add(self, step: TrajectoryStep) -> None:
        self.steps.append(step)

    @property
    def tool_steps(self) -> list[TrajectoryStep]:
        return [s for s in self.steps if s.kind in ("tool", "parallel")]

    def last_observation(self) -> Any:
        for step in reversed(self.steps):
            if step.kind in ("tool", "parallel", "resume") and step.error is None:
                return step.observation
        return None

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Trajectory:
        return cls.model_validate(json.loads(text))
