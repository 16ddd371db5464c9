"""Message envelope and the payload models the runtime understands.

`Message` carries a payload plus the envelope the runtime reads: `trace_id` (correlation,
cancellation, accounting), `deadline_s` (wall-clock expiry checked at pick-up) and `headers`.
`WM` and `FinalAnswer` drive controller loops; `StreamChunk` is one piece of a streamed reply.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from .errors import ConfigurationError

__all__ = [
    "WM",
    "FinalAnswer",
    "Headers",
    "Message",
    "PlanStep",
    "StreamChunk",
    "Thought",
]


def _new_trace_id() -> str:
    return uuid.uuid4().hex


class Headers(BaseModel):
    """Routing metadata shared by every message of a request."""

    tenant: str
    topic: str | None = None
    priority: int = 0


class Message(BaseModel):
    """The envelope every traced item travels in."""

    payload: Any
    headers: Headers
    trace_id: str = Field(default_factory=_new_trace_id)
    ts: float = Field(default_factory=time.time)
    deadline_s: float | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("deadline_s")
    @classmethod
    def _deadline_is_a_time(cls, value: float | None) -> float | None:
        # NaN compares false with every clock reading: such a deadline would never expire,
        # silently. Pydantic reports this error inside its ValidationError.
        if value is not None and math.isnan(value):
            raise ConfigurationError(
                "Message.deadline_s must be a wall-clock time (time.time() + seconds) or "
                "None for no deadline; got nan"
            )
        return value


class StreamChunk(BaseModel):
    """One piece of a streamed reply; `seq` increases per `stream_id` until `done`."""

    stream_id: str
    seq: int
    text: str
    done: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)


class PlanStep(BaseModel):
    kind: Literal["retrieve", "web", "sql", "summarize", "route", "stop"]
    args: dict[str, Any] = Field(default_factory=dict)
    max_concurrency: int = 1


class Thought(BaseModel):
    steps: list[PlanStep]
    rationale: str
    done: bool = False


class WM(BaseModel):
    """Working memory of a controller loop, with its hop and token budgets."""

    query: str
    facts: list[Any] = Field(default_factory=list)
    hops: int = 0
    budget_hops: int | None = 8
    tokens_used: int = 0
    budget_tokens: int | None = None
    confidence: float = 0.0


class FinalAnswer(BaseModel):
    """The answer that ends a controller loop; always delivered to Rookery."""

    text: str
    citations: list[str] = Field(default_factory=list)
