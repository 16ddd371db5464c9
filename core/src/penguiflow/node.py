"""`Node` (an async function in a flow) and `NodePolicy` (validation, timeout, retries, breaker)."""

from __future__ import annotations

import asyncio
import inspect
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigurationError, InvalidTypeError

if TYPE_CHECKING:
    from .registry import ModelRegistry

__all__ = ["CircuitBreakerPolicy", "Node", "NodeFunc", "NodePolicy", "ValidationMode"]

ValidationMode = Literal["both", "in", "out", "none"]
NodeFunc = Callable[[Any, Any], Awaitable[Any]]

_VALIDATION_MODES = frozenset({"both", "in", "out", "none"})


@dataclass(slots=True, frozen=True)
class CircuitBreakerPolicy:
    """Fail fast after repeated failures instead of hammering a broken dependency.

    After `failure_threshold` consecutive failed attempts the circuit *opens*: messages are
    rejected without invoking the node (a `FlowError` with code `CIRCUIT_OPEN`). After
    `reset_timeout_s` one probe is let through (*half-open*); its success closes the circuit,
    its failure opens it again for another `reset_timeout_s`.
    """

    failure_threshold: int = 5
    reset_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ConfigurationError(
                f"failure_threshold must be >= 1 (got {self.failure_threshold}); "
                "it counts consecutive failures before the circuit opens"
            )
        if self.reset_timeout_s < 0:
            raise ConfigurationError(
                f"reset_timeout_s must be >= 0 (got {self.reset_timeout_s}); "
                "it is the cool-down in seconds before a half-open probe"
            )


@dataclass(slots=True)
class NodePolicy:
    """How the runtime invokes a node: validation, timeout, retries with backoff, breaker."""

    validate: ValidationMode = "both"
    timeout_s: float | None = None
    max_retries: int = 0
    backoff_base: float = 0.5
    backoff_mult: float = 2.0
    max_backoff: float | None = None
    circuit_breaker: CircuitBreakerPolicy | None = None

    def __post_init__(self) -> None:
        if self.validate not in _VALIDATION_MODES:
            raise ConfigurationError("validate must be one of 'both', 'in', 'out', 'none'")

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to sleep before retry number `attempt` (the first retry is attempt 1).

        `backoff_base * backoff_mult ** (attempt - 1)`, capped by `max_backoff`. The power is
        never allowed to overflow: a policy that retries for ever with a capped backoff keeps
        retrying at the cap (an uncapped delay that outgrows a float is infinite)."""
        cap = self.max_backoff
        try:
            delay = float(self.backoff_base * self.backoff_mult ** max(attempt - 1, 0))
        except OverflowError:
            delay = math.inf
        if math.isnan(delay):
            delay = math.inf
        if cap is not None:
            delay = min(delay, cap)
        return max(delay, 0.0)


def _new_node_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class Node:
    """An `async def fn(message, ctx)` with a name, a policy and an identity in the graph."""

    func: NodeFunc
    name: str | None = None
    policy: NodePolicy = field(default_factory=NodePolicy)
    allow_cycle: bool = False
    node_id: str = field(init=False, default_factory=_new_node_id)

    def __post_init__(self) -> None:
        if not asyncio.iscoroutinefunction(self.func):
            label = self.name or getattr(self.func, "__name__", type(self.func).__name__)
            raise InvalidTypeError(
                f"Node function must be declared with async def: {label!r} is not a coroutine "
                f"function; define it as `async def {label}(message, ctx): ...` (wrap an object "
                "with an async __call__ in such a function)"
            )
        if self.name is None:
            self.name = self.func.__name__
        params = list(inspect.signature(self.func).parameters.values())
        if len(params) != 2:
            raise ConfigurationError(
                f"Node '{self.name}' must accept exactly two parameters (message, ctx); "
                f"got {len(params)}: declare it as `async def {self.name}(message, ctx)`"
            )
        if params[1].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise ConfigurationError(
                f"Context parameter must be positional: in node '{self.name}', "
                f"'{params[1].name}' is {params[1].kind.description}; "
                "make it a plain positional parameter"
            )

    def __hash__(self) -> int:
        return hash(self.node_id)

    def to(self, *nodes: Node) -> tuple[Node, tuple[Node, ...]]:
        """An adjacency for `create`: this node followed by `nodes`."""
        return self, nodes

    async def invoke(self, message: Any, ctx: Any, *, registry: ModelRegistry | None) -> Any:
        """Call the node, validating input and output through `registry` per the policy."""
        validate = self.policy.validate
        if registry is None or validate == "none":
            return await self.func(message, ctx)
        assert self.name is not None
        in_adapter, out_adapter = registry.adapters(self.name)
        if validate in ("in", "both"):
            message = in_adapter.validate_python(message)
        result = await self.func(message, ctx)
        if result is None:
            return None
        if validate in ("out", "both"):
            return out_adapter.validate_python(result)
        return result
