"""Circuit breaker state for one node in one flow (see `CircuitBreakerPolicy`)."""

from __future__ import annotations

from typing import Literal

from .node import CircuitBreakerPolicy

__all__ = ["CircuitBreaker", "CircuitState"]

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failed attempts and decides whether the next one may run.

    Transitions are returned as event names so the worker can record them as FlowEvents.
    """

    __slots__ = ("failures", "opened_at", "policy", "state")

    def __init__(self, policy: CircuitBreakerPolicy) -> None:
        self.policy = policy
        self.state: CircuitState = "closed"
        self.failures = 0
        self.opened_at = 0.0

    def before_attempt(self, now: float) -> str | None:
        """`None` to proceed, `"circuit_half_open"` to proceed as the probe, or
        `"circuit_rejected"` when the circuit is open and the attempt must not run."""
        if self.state != "open":
            return None
        if now - self.opened_at >= self.policy.reset_timeout_s:
            self.state = "half_open"
            return "circuit_half_open"
        return "circuit_rejected"

    def on_success(self) -> str | None:
        self.failures = 0
        if self.state != "closed":
            self.state = "closed"
            return "circuit_closed"
        return None

    def on_failure(self, now: float) -> str | None:
        self.failures += 1
        if self.state == "half_open" or (
            self.state == "closed" and self.failures >= self.policy.failure_threshold
        ):
            self.state = "open"
            self.opened_at = now
            return "circuit_open"
        return None

    def retry_after(self, now: float) -> float:
        """Seconds until a half-open probe will be allowed."""
        return max(0.0, self.opened_at + self.policy.reset_timeout_s - now)
