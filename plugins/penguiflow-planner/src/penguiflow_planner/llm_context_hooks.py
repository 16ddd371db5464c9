"""LLM context hooks: code that adds to a run's `llm_context` before the model's first call
(PenguiFlow 3.11's `LLMContextHook`), e.g. facts about the user fetched from a profile service.

    class UserProfile:
        name = "user_profile"
        overwrite = False  # the default: keys the caller already set are kept

        async def before_run(self, inp: LLMContextHookInput) -> Mapping[str, Any] | None:
            return {"user_profile": await profiles.get(inp.tool_context["user_id"])}

    planner = ReactPlanner(..., llm_context_hooks=[UserProfile()])

Hooks run once per `run()` (not on `resume()`), in order, after short-term memory has been
added; each sees the context as the earlier hooks left it. A hook's patch is merged key by key:
a key already in the context is kept unless the hook's `overwrite` attribute is true. Hooks are
best-effort: one that raises, returns something that is not a mapping, or returns values that
are not JSON (the model is shown `llm_context` as JSON) is skipped with an
`llm_context_hook_failed` event and a warning, and the run goes on. A merge that changed
something gives an `llm_context_hook_applied` event (`hook_name`, `keys_added`, `bytes_est`).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Protocol

from penguiflow.memory import MemoryKey

from ._events import EmitFn
from ._failures import describe_failure, is_failure

__all__ = ["LLMContextHook", "LLMContextHookInput", "run_context_hooks"]

logger = logging.getLogger("penguiflow.planner")


@dataclass(frozen=True, slots=True)
class LLMContextHookInput:
    """What a hook is given: the run's query, its `llm_context` and `tool_context` (as they
    will be used; read-only), and the memory key the run resolved (None without one)."""

    query: str
    llm_context: Mapping[str, Any]
    tool_context: Mapping[str, Any]
    memory_key: MemoryKey | None


class LLMContextHook(Protocol):
    """Adds to `llm_context` before a run's first model call.

    `before_run` returns the keys to add (a JSON mapping) or None; it may be async (as in
    PenguiFlow) or a plain method. Optional attributes, read with `getattr`: `name` (used in
    events and logs; default the class name) and `overwrite` (replace keys that are already
    set; default False)."""

    def before_run(
        self, inp: LLMContextHookInput
    ) -> Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None: ...


def _hook_name(hook: object) -> str:
    name = getattr(hook, "name", None)
    if isinstance(name, str) and name.strip():
        return name
    return type(hook).__name__


def _not_json(patch: Mapping[Any, Any]) -> str | None:
    """Why `patch` cannot go into `llm_context`, or None when it can."""
    bad_keys = [repr(key) for key in patch if not isinstance(key, str)]
    if bad_keys:
        return f"keys must be strings, got {', '.join(bad_keys[:3])}"
    try:
        json.dumps(dict(patch), allow_nan=False)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


async def _failed(
    emit: EmitFn, hook_name: str, error_type: str, reason: str, exc: BaseException | None = None
) -> None:
    # The event carries the hook and the kind of failure, not the error's text: an exception
    # from a profile service may quote data the event's sinks must not see. The log has it.
    logger.warning(
        "llm_context_hook_failed: %s skipped (%s)",
        hook_name,
        reason,
        extra={"hook_name": hook_name, "error_type": error_type},
        exc_info=exc,
    )
    await emit("llm_context_hook_failed", {"hook_name": hook_name, "error_type": error_type})


async def run_context_hooks(
    hooks: Sequence[LLMContextHook], hook_input: LLMContextHookInput, *, emit: EmitFn
) -> dict[str, Any]:
    """Run `hooks` in order; the patch to merge into `hook_input.llm_context`
    (`{**llm_context, **patch}` is the run's context). A failing hook is skipped (see the
    module's docstring); a cancellation of the run propagates."""
    base = dict(hook_input.llm_context)
    merged = dict(base)
    for hook in hooks:
        hook_name = _hook_name(hook)
        overwrite = bool(getattr(hook, "overwrite", False))
        seen = replace(hook_input, llm_context=MappingProxyType(dict(merged)))
        try:
            patch: Any = hook.before_run(seen)
            if inspect.isawaitable(patch):
                patch = await patch
        except BaseException as exc:
            if not is_failure(exc):
                raise
            await _failed(emit, hook_name, type(exc).__name__, describe_failure(exc), exc)
            continue
        if patch is None:
            continue
        if not isinstance(patch, Mapping):
            await _failed(
                emit,
                hook_name,
                "InvalidPatchType",
                f"before_run returned {type(patch).__name__}; return a mapping of the keys to "
                "add to llm_context, or None",
            )
            continue
        changes = {
            key: value
            for key, value in patch.items()
            if key not in merged or (overwrite and merged[key] != value)
        }
        if not changes:
            continue
        problem = _not_json(changes)
        if problem is not None:
            await _failed(
                emit,
                hook_name,
                "NotJSONSerialisable",
                f"its patch is not JSON ({problem}); llm_context is shown to the model as "
                "JSON, so return only JSON values with string keys",
            )
            continue
        keys_added = [str(key) for key in changes if key not in merged]
        merged.update(changes)
        size = len(json.dumps(merged, ensure_ascii=False, default=str).encode("utf-8"))
        await emit(
            "llm_context_hook_applied",
            {"hook_name": hook_name, "keys_added": keys_added, "bytes_est": size},
        )
    return {key: value for key, value in merged.items() if key not in base or base[key] != value}
