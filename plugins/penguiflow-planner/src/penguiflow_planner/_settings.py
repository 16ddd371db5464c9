"""The planner's configuration: PenguiFlow 3.11's keywords, checked and normalised once.

`ReactPlanner.__init__` takes every keyword PenguiFlow's does. Each one either works, or, for a
feature this planner does not have, raises `UnsupportedFeatureError` (a `NotImplementedError`)
naming the feature and what to use instead, when it is given a value other than its default:
none is silently ignored. Three keywords are accepted with either value because ours always
behaves one way, documented in docs/migration.md: `use_native_llm` (models given by name are
always built by our own adapters, never LiteLLM), `use_native_reasoning` (reasoning content is
neither requested nor shown; set it on the client) and `arg_fill_enabled` (missing arguments
are an error step the model fixes in its next action, not a separate fill-in call). Our own
keywords (`budgets`, `join_strategy`, ...) come after.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from penguiflow.catalog import NodeSpec, build_catalog
from penguiflow.errors import ConfigurationError, InvalidTypeError, UnsupportedFeatureError

from ._budgets import PlannerBudgets
from ._parsing import DEFAULT_MAX_DEPTH, DEFAULT_MAX_REPLY_BYTES, MAX_DEPTH_LIMIT

__all__ = [
    "PlannerSettings",
    "built_from_config",
    "check_unsupported",
    "json_context",
    "resolve_client",
]

#: PenguiFlow keywords for features we do not have: (default, what to do instead)
_UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "reasoning_effort": (
        None,
        "set the reasoning effort on the client (penguiflow-openai's OpenAIClient options) and "
        "pass it as llm_client",
    ),
    "reasoning_display": (None, "reasoning content is not streamed by this planner"),
    "llm_fallback": (
        None,
        "wrap your clients in one that falls back, and pass it as llm_client",
    ),
    "tool_call_mode": ("prompted", "only 'prompted' (JSON actions) is supported"),
    "llm_transport": (None, "pass a configured client as llm_client"),
    "multi_action_sequential": (
        False,
        "the planner runs one action per reply; use a 'parallel' action for several tools",
    ),
    "multi_action_read_only_only": (
        True,
        "it tunes multi_action_sequential, which this planner does not have; leave it unset",
    ),
    "multi_action_max_tools": (
        2,
        "it tunes multi_action_sequential, which this planner does not have; leave it unset",
    ),
    "auto_seq_enabled": (False, "let the model choose each step"),
    "auto_seq_read_only_only": (
        True,
        "it tunes auto_seq_enabled, which this planner does not have; leave it unset",
    ),
    "auto_seq_execute": (False, "let the model choose each step"),
    "guardrail_gateway": (
        None,
        "check tool calls in a ToolVisibilityPolicy or in the tools themselves",
    ),
    "guardrail_conversation_history_turns": (
        1,
        "it tunes guardrail_gateway, which this planner does not have; leave it unset",
    ),
    "skills": (None, "skills are not part of penguiflow-planner"),
    "skills_provider": (None, "skills are not part of penguiflow-planner"),
    "skills_provider_factory": (None, "skills are not part of penguiflow-planner"),
}


def check_unsupported(options: Mapping[str, Any]) -> None:
    """Refuse a PenguiFlow keyword for a feature we lack, when given a non-default value."""
    for name, (default, instead) in _UNSUPPORTED.items():
        if name in options and options[name] != default:
            raise UnsupportedFeatureError(
                f"ReactPlanner({name}={options[name]!r}): {name.replace('_', ' ')} is not "
                f"supported by penguiflow-planner; {instead}"
            )
    # Background tasks run on penguiflow-sessions: without it, say what to install.
    from ._background_support import require_sessions

    require_sessions(options.get("background_tasks"))


def json_context(value: Mapping[str, Any] | None, *, name: str) -> dict[str, Any] | None:
    """A JSON copy of `llm_context` (the model sees it, so it must be JSON)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidTypeError(f"{name} must be a mapping (a dict), got {type(value).__name__}")
    try:
        loaded: dict[str, Any] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(
            f"{name} must be JSON-serializable: {exc}; put objects that are not JSON (clients, "
            "callbacks, secrets) in tool_context, which only tools see"
        ) from None
    return loaded


def resolve_client(
    llm: Any,
    *,
    purpose: str,
    temperature: float,
    json_schema_mode: bool,
    timeout_s: float | None = None,
) -> Any:
    """The client for `llm`: a client object as it is, a model string or config dict through
    the installed LLM adapter drivers (`_llm_resolve.resolve_llm`, which gives the adapter
    `timeout_s`, PenguiFlow's `llm_timeout_s`). A client built here is the planner's to close
    (`built_from_config`)."""
    if llm is None:
        return None
    if built_from_config(llm):
        from ._llm_resolve import resolve_llm

        return resolve_llm(llm, temperature=temperature, timeout_s=timeout_s)
    if not callable(getattr(llm, "complete", None)):
        raise InvalidTypeError(
            f"{purpose} must be a model name, a config dict or a client with an async "
            f"complete(*, messages, ...) method, got {type(llm).__name__}"
        )
    return llm


def built_from_config(llm: Any) -> bool:
    """Whether `llm` is a model name or config dict (the planner builds, and owns, its
    client) rather than a client object (the caller's, never closed by the planner)."""
    return isinstance(llm, (str, Mapping))


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be positive and finite, got {value}")
    return float(value)


@dataclass
class PlannerSettings:
    """Everything a run needs to know about its planner, checked."""

    client: Any
    catalog: list[NodeSpec]
    budgets: PlannerBudgets
    temperature: float = 0.0
    json_schema_mode: bool = True
    system_prompt_extra: str | None = None
    token_budget: int | None = None
    pause_enabled: bool = True
    summarizer_client: Any = None
    reflection_client: Any = None
    repair_attempts: int = 3
    max_consecutive_arg_failures: int = 3
    arg_fill_enabled: bool = True
    time_source: Callable[[], float] = time.monotonic
    llm_timeout_s: float = 360.0
    llm_max_retries: int = 3
    absolute_max_parallel: int = 50
    stream_final_response: bool = False
    final_response_model: type[BaseModel] | None = None
    final_response_retries: int = 1
    use_native_reasoning: bool = True
    max_concurrent_branches: int | None = None
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    max_json_depth: int = DEFAULT_MAX_DEPTH
    #: the keywords the planner was built with, for fork()
    init_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.repair_attempts = _positive_int("repair_attempts", self.repair_attempts, minimum=0)
        self.max_consecutive_arg_failures = _positive_int(
            "max_consecutive_arg_failures", self.max_consecutive_arg_failures
        )
        self.llm_max_retries = _positive_int("llm_max_retries", self.llm_max_retries, minimum=0)
        self.llm_timeout_s = _positive_number("llm_timeout_s", self.llm_timeout_s)
        self.absolute_max_parallel = _positive_int(
            "absolute_max_parallel", self.absolute_max_parallel
        )
        self.final_response_retries = _positive_int(
            "final_response_retries", self.final_response_retries, minimum=0
        )
        if self.token_budget is not None:
            self.token_budget = _positive_int("token_budget", self.token_budget)
        if self.max_concurrent_branches is not None:
            self.max_concurrent_branches = _positive_int(
                "max_concurrent_branches", self.max_concurrent_branches
            )
        self.max_reply_bytes = _positive_int("max_reply_bytes", self.max_reply_bytes)
        if not 1 <= self.max_json_depth <= MAX_DEPTH_LIMIT:
            raise ConfigurationError(
                f"max_json_depth must be between 1 and {MAX_DEPTH_LIMIT} (the JSON decoder "
                f"recurses once per level), got {self.max_json_depth}"
            )
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)):
            raise ConfigurationError(f"temperature must be a number, got {self.temperature!r}")
        model = self.final_response_model
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidTypeError(
                f"final_response_model must be a Pydantic model class, got {model!r}"
            )
        if not callable(self.time_source):
            raise InvalidTypeError(
                f"time_source must be a callable returning seconds, got {self.time_source!r}"
            )


def build_catalog_from(
    *,
    nodes: Sequence[Any] | None,
    registry: Any,
    catalog: Sequence[NodeSpec] | None,
    default_loading_mode: Any = None,
) -> list[NodeSpec]:
    """The tools: a ready `catalog`, or `nodes` with their models from `registry`."""
    if catalog is not None:
        if nodes is not None:
            raise ConfigurationError("give either catalog= or nodes= with registry=, not both")
        specs = list(catalog)
        for spec in specs:
            if not isinstance(spec, NodeSpec):
                raise InvalidTypeError(
                    f"catalog= must hold NodeSpec objects (build them with build_catalog), got "
                    f"{type(spec).__name__}"
                )
    elif nodes is not None:
        if registry is None:
            raise ConfigurationError(
                "nodes= needs registry= (a ModelRegistry with each node's input and output "
                "models), or pass catalog= built with build_catalog(nodes, registry)"
            )
        specs = build_catalog(list(nodes), registry, default_loading_mode=default_loading_mode)
    else:
        raise ConfigurationError(
            "ReactPlanner needs its tools: catalog=build_catalog(nodes, registry), or nodes= "
            "with registry="
        )
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(
            f"two tools in the catalog share a name ({', '.join(duplicates)}); names must be "
            "unique (connectors namespace theirs: connector.tool)"
        )
    return specs
