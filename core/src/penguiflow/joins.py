"""Join strategies: how the results of parallel branches become one observation.

A planner that runs several tool calls at once hands every branch, failed ones included, to
a join strategy. Strategies are chosen by name, so they are drivers: entry points of the
`penguiflow.join_strategies` group, each naming a factory called as `factory(name, **options)`.
The kernel registers its own through the same group:

- `append`: every branch in plan order, `{"tool", "ok", "output" | "error"}` each, with counts.
- `replace`: the last successful output wins (`{"result": ...}`), failures listed beside it.
- `human_gated`: asks for a human decision (`JoinResult.pause`) with every branch attached.

`ToolJoin(func)` turns a function of `(results, failures, success_count, failure_count,
expected_count)` into a strategy, as a join tool receives them in PenguiFlow.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from .errors import InvalidTypeError, describe_exception

if TYPE_CHECKING:
    from .plugins import PluginSettings

__all__ = [
    "AppendJoin",
    "BranchOutcome",
    "HumanGatedJoin",
    "JoinPause",
    "JoinRequest",
    "JoinResult",
    "JoinStrategy",
    "ReplaceJoin",
    "ToolJoin",
    "builtin_join_strategies",
    "get_join_strategy",
    "join_strategies",
]

logger = logging.getLogger("penguiflow.plugins")


class BranchOutcome(BaseModel):
    """One branch of a parallel plan: the tool, its arguments, and its output or error."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    ok: bool
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    duration_s: float = Field(default=0.0, ge=0)

    def summary(self) -> dict[str, Any]:
        if self.ok:
            return {"tool": self.tool, "ok": True, "output": self.output}
        return {"tool": self.tool, "ok": False, "error": self.error, "error_type": self.error_type}


class JoinRequest(BaseModel):
    """What a strategy receives: every branch in plan order, and how many were planned."""

    branches: list[BranchOutcome]
    expected_count: int = Field(ge=0)

    @property
    def results(self) -> list[Any]:
        return [b.output for b in self.branches if b.ok]

    @property
    def failures(self) -> list[BranchOutcome]:
        return [b for b in self.branches if not b.ok]

    @property
    def success_count(self) -> int:
        return sum(1 for b in self.branches if b.ok)

    @property
    def failure_count(self) -> int:
        return len(self.branches) - self.success_count


class JoinPause(BaseModel):
    """A request to stop and ask a human; `payload` is shown to them."""

    reason: str
    payload: dict[str, Any] = Field(default_factory=dict)


class JoinResult(BaseModel):
    """The observation the planner records, or a pause (then `observation` is provisional)."""

    observation: Any = None
    pause: JoinPause | None = None


@runtime_checkable
class JoinStrategy(Protocol):
    """A `name` and `async join(request) -> JoinResult`; installed as a driver of the
    `penguiflow.join_strategies` entry-point group."""

    name: str

    async def join(self, request: JoinRequest) -> JoinResult: ...


def _counts(request: JoinRequest) -> dict[str, int]:
    return {
        "success_count": request.success_count,
        "failure_count": request.failure_count,
        "expected_count": request.expected_count,
    }


def _every_branch(request: JoinRequest) -> dict[str, Any]:
    return {"branches": [branch.summary() for branch in request.branches], **_counts(request)}


class AppendJoin:
    """Every branch, in plan order, failures included."""

    name = "append"

    async def join(self, request: JoinRequest) -> JoinResult:
        return JoinResult(observation=_every_branch(request))


class ReplaceJoin:
    """The last successful output replaces the earlier ones; failures stay visible."""

    name = "replace"

    async def join(self, request: JoinRequest) -> JoinResult:
        results = request.results
        observation: dict[str, Any] = {"result": results[-1] if results else None}
        if request.failures:
            observation["failures"] = [branch.summary() for branch in request.failures]
        observation.update(_counts(request))
        return JoinResult(observation=observation)


class HumanGatedJoin:
    """Pause for a human to decide what the branches amount to."""

    name = "human_gated"

    def __init__(self, reason: str = "review the parallel results before the plan continues"):
        self.reason = reason

    async def join(self, request: JoinRequest) -> JoinResult:
        payload = _every_branch(request)
        return JoinResult(observation=payload, pause=JoinPause(reason=self.reason, payload=payload))


JoinFunction = Callable[..., "Any | Awaitable[Any]"]


class ToolJoin:
    """A join written as a function receiving `results`, `failures` (branch summaries),
    `success_count`, `failure_count` and `expected_count` by keyword (it may take fewer)."""

    def __init__(self, func: JoinFunction, *, name: str | None = None) -> None:
        self.func = func
        self.name = name or getattr(func, "__name__", "tool_join")
        parameters = inspect.signature(func).parameters
        accepted = {"results", "failures", "success_count", "failure_count", "expected_count"}
        takes_all = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        unknown = sorted(set(parameters) - accepted) if not takes_all else []
        if unknown:
            raise InvalidTypeError(
                f"join function {self.name!r} has parameter(s) {unknown} a join does not "
                f"provide; it may take {', '.join(sorted(accepted))}"
            )
        self._wanted = accepted if takes_all else set(parameters)

    async def join(self, request: JoinRequest) -> JoinResult:
        available: dict[str, Any] = {
            "results": request.results,
            "failures": [branch.summary() for branch in request.failures],
            **_counts(request),
        }
        value = self.func(**{k: v for k, v in available.items() if k in self._wanted})
        if inspect.isawaitable(value):
            value = await value
        return value if isinstance(value, JoinResult) else JoinResult(observation=value)


def builtin_join_strategies() -> dict[str, JoinStrategy]:
    """The kernel's three strategies, built directly (no plugin host involved)."""
    return {"append": AppendJoin(), "replace": ReplaceJoin(), "human_gated": HumanGatedJoin()}


def _checked(name: str, strategy: object) -> JoinStrategy:
    if not isinstance(strategy, JoinStrategy):
        raise InvalidTypeError(
            f"join strategy driver {name!r} built {strategy!r}, which has no `name` and async "
            "`join(request) -> JoinResult`; fix its entry point in the "
            "'penguiflow.join_strategies' group"
        )
    return strategy


def join_strategies(settings: PluginSettings | None = None) -> dict[str, JoinStrategy]:
    """Every installed join strategy (the `penguiflow.join_strategies` drivers, the kernel's
    included unless disabled), built with no options, by name.

    One that fails to load or build is logged and left out, so a broken plugin never hides
    the others; in strict mode (`PENGUIFLOW_STRICT_PLUGINS=1`) it raises instead."""
    from .plugins import PluginSettings
    from .plugins._drivers import build_every_driver

    settings = settings if settings is not None else PluginSettings.from_env()
    built, failures = build_every_driver("join_strategy", settings)
    problems: list[Exception] = [*failures]
    found: dict[str, JoinStrategy] = {}
    for name, strategy in built.items():
        try:
            found[name] = _checked(name, strategy)
        except TypeError as exc:
            problems.append(exc)
    if problems and settings.strict:
        raise problems[0]
    for problem in problems:
        logger.warning("join strategy left out: %s", describe_exception(problem))
    return found


def get_join_strategy(
    name: str, *, settings: PluginSettings | None = None, **options: Any
) -> JoinStrategy:
    """The join strategy installed as `name`, built with `options`
    (`resolve_driver("join_strategy", name, **options)`). An unknown name raises
    `DriverNotFoundError` (a `LookupError`) listing the installed ones."""
    from .plugins import resolve_driver

    return _checked(name, resolve_driver("join_strategy", name, settings=settings, **options))
