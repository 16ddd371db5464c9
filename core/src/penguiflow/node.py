"""`Node` (an async function in a flow) and `NodePolicy` (validation, timeout, retries, breaker)."""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
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


def _number(owner: str, field_name: str, value: object, *, allowed: str, hint: str) -> float:
    """`value` as a float when it is a real number (never a bool or a string); else an
    `InvalidTypeError` naming the field, what it allows and how to fix it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(
            f"{owner}.{field_name} must be a number {allowed}; got {type(value).__name__} "
            f"{value!r}. {hint}"
        )
    try:
        return float(value)
    except OverflowError:  # an int too large for a float: as unusable as an infinity
        return math.inf


def _check_seconds(
    owner: str, field_name: str, value: object, *, minimum: float, strict: bool, hint: str
) -> None:
    """Refuse what is not a finite number of seconds `> minimum` (`>=` unless `strict`).

    NaN passes every `<` test, so an unchecked NaN timeout never fires and an unchecked NaN
    backoff makes the retry sleep for ever: both are refused here, with infinities."""
    relation = ">" if strict else ">="
    allowed = f"{relation} {minimum:g} (finite)"
    number = _number(owner, field_name, value, allowed=allowed, hint=hint)
    too_small = number <= minimum if strict else number < minimum
    if not math.isfinite(number) or too_small:
        raise ConfigurationError(f"{owner}.{field_name} must be {allowed}; got {value!r}. {hint}")


def _check_count(owner: str, field_name: str, value: object, *, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(
            f"{owner}.{field_name} must be >= {minimum} (an int); got {type(value).__name__} "
            f"{value!r}. {hint}"
        )
    if value < minimum:
        raise ConfigurationError(
            f"{owner}.{field_name} must be >= {minimum} (an int); got {value!r}. {hint}"
        )


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
        _check_count(
            "CircuitBreakerPolicy",
            "failure_threshold",
            self.failure_threshold,
            minimum=1,
            hint="It counts consecutive failures before the circuit opens.",
        )
        _check_seconds(
            "CircuitBreakerPolicy",
            "reset_timeout_s",
            self.reset_timeout_s,
            minimum=0,
            strict=False,
            hint="It is the cool-down in seconds before a half-open probe.",
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
        # Checked here, at construction: a bad value would otherwise surface per message,
        # as a timeout that never fires or a retry sleep that never ends.
        if not isinstance(self.validate, str) or self.validate not in _VALIDATION_MODES:
            raise ConfigurationError(
                f"validate must be one of 'both', 'in', 'out', 'none' (got {self.validate!r})"
            )
        if self.timeout_s is not None:
            _check_seconds(
                "NodePolicy",
                "timeout_s",
                self.timeout_s,
                minimum=0,
                strict=True,
                hint="Give the seconds one attempt may take, or None for no timeout.",
            )
        _check_count(
            "NodePolicy",
            "max_retries",
            self.max_retries,
            minimum=0,
            hint="It counts retries after the first attempt (0: no retry).",
        )
        _check_seconds(
            "NodePolicy",
            "backoff_base",
            self.backoff_base,
            minimum=0,
            strict=False,
            hint="It is the sleep in seconds before the first retry.",
        )
        _check_seconds(
            "NodePolicy",
            "backoff_mult",
            self.backoff_mult,
            minimum=0,
            strict=False,
            hint="Each retry's sleep is the previous one times this factor.",
        )
        if self.max_backoff is not None:
            _check_seconds(
                "NodePolicy",
                "max_backoff",
                self.max_backoff,
                minimum=0,
                strict=False,
                hint="It caps the sleep between retries; None means no cap.",
            )
        if self.circuit_breaker is not None and not isinstance(
            self.circuit_breaker, CircuitBreakerPolicy
        ):
            raise InvalidTypeError(
                "NodePolicy.circuit_breaker must be a CircuitBreakerPolicy or None; got "
                f"{type(self.circuit_breaker).__name__} {self.circuit_breaker!r}"
            )

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
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise InvalidTypeError(
                f"Node name must be a non-empty str or None (None: the function's name); "
                f"got {type(self.name).__name__} {self.name!r}"
            )
        if not isinstance(self.policy, NodePolicy):
            raise InvalidTypeError(
                f"Node policy must be a NodePolicy; got {type(self.policy).__name__} "
                f"{self.policy!r}: pass policy=NodePolicy(...) (or leave it out for the default)"
            )
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
