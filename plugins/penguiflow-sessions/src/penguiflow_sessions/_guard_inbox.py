"""Guardrail checks that run beside a task: it submits an event and collects the verdict
later (PenguiFlow's `penguiflow.steering.guard_inbox`).

The verdicts are whatever the evaluator returns (the planner's guardrail decisions, say);
this module only carries them, so it does not depend on a guardrail implementation.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import uuid4

from penguiflow.errors import UnknownNameError, describe_exception

__all__ = [
    "GuardRuleEvaluator",
    "InMemoryGuardInbox",
    "SteeringGuardEvent",
    "SteeringGuardInbox",
    "SteeringGuardResponse",
]


def _hex() -> str:
    return uuid4().hex


@dataclass(slots=True)
class SteeringGuardEvent:
    """Something a run wants checked; `correlation_id` fetches the verdict."""

    event_id: str = field(default_factory=_hex)
    correlation_id: str = field(default_factory=_hex)
    event_type: str = ""
    run_id: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    context_snapshot: dict[str, Any] = field(default_factory=dict)
    required_rules: frozenset[str] = frozenset()


@dataclass(slots=True)
class SteeringGuardResponse:
    """The verdict on one event: the evaluator's decisions, or the error it raised."""

    correlation_id: str
    decisions: list[Any] = field(default_factory=list)
    error: str | None = None


class GuardRuleEvaluator(Protocol):
    """Checks an event against guardrail rules."""

    async def evaluate(self, event: SteeringGuardEvent) -> list[Any]: ...


class SteeringGuardInbox(ABC):
    """Where a run submits events for checking and later reads the verdicts."""

    @abstractmethod
    async def submit(self, event: SteeringGuardEvent) -> str:
        """Start checking `event`; returns its correlation id."""

    @abstractmethod
    async def await_response(self, correlation_id: str, timeout_s: float) -> SteeringGuardResponse:
        """The verdict for `correlation_id`, waiting at most `timeout_s` (then TimeoutError)."""

    @abstractmethod
    def drain_responses(self, run_id: str) -> list[SteeringGuardResponse]:
        """Take the verdicts that arrived for `run_id` and were not awaited."""


class InMemoryGuardInbox(SteeringGuardInbox):
    """Checks events in this process, each in its own asyncio task."""

    def __init__(self, evaluator: GuardRuleEvaluator) -> None:
        self._evaluator = evaluator
        self._pending: dict[str, asyncio.Future[SteeringGuardResponse]] = {}
        self._done: dict[str, SteeringGuardResponse] = {}
        self._runs: dict[str, str] = {}
        # Strong references: the event loop keeps only weak ones to running tasks.
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, event: SteeringGuardEvent) -> str:
        future: asyncio.Future[SteeringGuardResponse] = asyncio.get_running_loop().create_future()
        self._pending[event.correlation_id] = future
        self._runs[event.correlation_id] = event.run_id
        task = asyncio.create_task(self._check(event, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return event.correlation_id

    async def _check(
        self, event: SteeringGuardEvent, future: asyncio.Future[SteeringGuardResponse]
    ) -> None:
        try:
            response = SteeringGuardResponse(
                event.correlation_id, decisions=list(await self._evaluator.evaluate(event))
            )
        except Exception as exc:  # the verdict carries the failure; the run decides
            response = SteeringGuardResponse(event.correlation_id, error=describe_exception(exc))
        self._done[event.correlation_id] = response
        self._pending.pop(event.correlation_id, None)
        if not future.done():
            future.set_result(response)

    async def await_response(self, correlation_id: str, timeout_s: float) -> SteeringGuardResponse:
        if correlation_id in self._done:
            self._runs.pop(correlation_id, None)
            return self._done.pop(correlation_id)
        future = self._pending.get(correlation_id)
        if future is None:
            raise UnknownNameError(
                f"no guard event with correlation id {correlation_id!r} is pending; pass the id "
                "that submit() returned (each verdict is read once)"
            )
        response = await asyncio.wait_for(asyncio.shield(future), timeout=timeout_s)
        self._done.pop(correlation_id, None)
        self._runs.pop(correlation_id, None)
        return response

    def drain_responses(self, run_id: str) -> list[SteeringGuardResponse]:
        ids = [cid for cid in self._done if self._runs.get(cid) == run_id]
        for cid in ids:
            self._runs.pop(cid, None)
        return [self._done.pop(cid) for cid in ids]
