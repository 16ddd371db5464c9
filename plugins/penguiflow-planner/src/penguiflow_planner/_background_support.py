"""What `BackgroundTasksConfig(enabled=True)` changes in a planner, given penguiflow-sessions.

Sessions own background work (the task service, the `tasks.*` tools, the engine); the planner
only needs three things from them, all looked up lazily so that a planner without background
tasks never imports penguiflow-sessions:

- the `tasks.*` tools join the catalog (`background_catalog`),
- the model is told how to use them (`background_guidance`),
- a tool marked `extra["background"] = {"enabled": True, ...}` is handed to the task service
  instead of being called inline, and the model gets a `BackgroundTaskHandle`
  (`spawn_in_background`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from penguiflow.catalog import NodeSpec
from penguiflow.errors import MissingPluginError

from ._background import BackgroundTaskHandle

__all__ = [
    "BACKGROUND_GUIDANCE",
    "background_catalog",
    "background_enabled",
    "background_guidance",
    "require_sessions",
    "spawn_in_background",
    "without_task_tools",
]

#: tool-context keys the task tools and background tools read (PenguiFlow's names)
TASK_SERVICE_KEY = "task_service"
SUBAGENT_FLAG_KEY = "is_subagent"
PROACTIVE_HOPS_KEY = "proactive_hops_remaining"

BACKGROUND_GUIDANCE = """<background_tasks>
You can start background tasks: independent sub-agents that work while you keep talking to
the user. Use the tasks.* tools:
- tasks.spawn starts one (mode "subagent" with a query, or mode "job" with tool_name and
  tool_args) and returns its task_id at once; the work continues after your answer.
  Give several related tasks the same `group` to get one combined report; set
  retain_turn=true (with an APPEND or REPLACE merge strategy) to wait for the results
  before answering.
- tasks.list and tasks.get report status, progress and result digests.
- tasks.cancel and tasks.prioritize control a running task.
- tasks.apply_patch (and tasks.apply_group) apply or reject finished results: with the
  HUMAN_GATED merge strategy (the default) results reach the conversation only after the
  user approves them.
- tasks.acknowledge_background marks background results you have used.
A tool described as "runs in background" returns a task handle, not its result.
Background tasks work on a snapshot of the conversation taken when they started; when a
result says context_diverged, tell the user it may be stale.
</background_tasks>"""


def background_enabled(config: Any) -> bool:
    """Whether `config` (a `BackgroundTasksConfig`, or None) turns background tasks on."""
    return config is not None and bool(getattr(config, "enabled", False))


def require_sessions(config: Any) -> None:
    """Refuse background tasks when penguiflow-sessions, which runs them, is not installed."""
    if not background_enabled(config):
        return
    try:
        import penguiflow_sessions  # noqa: F401
    except ImportError:
        raise MissingPluginError(
            "ReactPlanner(background_tasks=BackgroundTasksConfig(enabled=True)) needs "
            "penguiflow-sessions, which runs background tasks; install it with "
            "`pip install penguiflow-sessions`, or leave background_tasks unset"
        ) from None


def background_catalog(config: Any, specs: Sequence[NodeSpec]) -> list[NodeSpec]:
    """`specs` with the `tasks.*` tools added when background tasks are on (a tool already in
    the catalog under the same name, such as the ones a forked planner inherits, is kept)."""
    if not background_enabled(config):
        return list(specs)
    from penguiflow_sessions.task_tools import build_task_tool_specs

    names = {spec.name for spec in specs}
    return [*specs, *(spec for spec in build_task_tool_specs() if spec.name not in names)]


def without_task_tools(specs: Sequence[NodeSpec]) -> list[NodeSpec]:
    """`specs` less the `tasks.*` tools penguiflow-sessions contributed (a user's own tool
    that happens to be named `tasks.something` stays)."""

    def contributed(spec: NodeSpec) -> bool:
        func = getattr(spec.node, "func", None)
        module = str(getattr(func, "__module__", ""))
        return spec.name.startswith("tasks.") and module.startswith("penguiflow_sessions")

    return [spec for spec in specs if not contributed(spec)]


def background_guidance(config: Any, system_prompt_extra: str | None) -> str | None:
    """`system_prompt_extra` with the background-task guidance appended when asked for."""
    if not background_enabled(config) or not getattr(config, "include_prompt_guidance", True):
        return system_prompt_extra
    if system_prompt_extra and BACKGROUND_GUIDANCE in system_prompt_extra:
        return system_prompt_extra  # a forked planner inherits the guidance
    if not system_prompt_extra:
        return BACKGROUND_GUIDANCE
    return f"{system_prompt_extra}\n\n{BACKGROUND_GUIDANCE}"


def _merge_strategy(raw: Any) -> str:
    """A merge strategy as PenguiFlow's enum values spell it ("human_gated", "append",
    "replace"), from any case and "-" or "_" (configs write "HUMAN_GATED")."""
    text = str(getattr(raw, "value", raw) or "human_gated").strip().lower().replace("-", "_")
    return {"human": "human_gated"}.get(text, text)


def _hops(tool_context: Mapping[str, Any]) -> int | None:
    value = tool_context.get(PROACTIVE_HOPS_KEY)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def spawn_in_background(
    config: Any,
    spec: NodeSpec,
    args: Mapping[str, Any],
    tool_context: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Start `spec` as a background task when it is marked so and the run can: background
    tasks on with `allow_tool_background`, a task service and a session id in the tool
    context, and proactive hops not used up (the guard against a background task spawning
    itself forever). Returns the handle for the model, or None to call the tool inline."""
    if not background_enabled(config) or not getattr(config, "allow_tool_background", False):
        return None
    marked = spec.extra.get("background") if isinstance(spec.extra, Mapping) else None
    if not isinstance(marked, Mapping) or marked.get("enabled") is not True:
        return None
    service = tool_context.get(TASK_SERVICE_KEY)
    session_id = tool_context.get("session_id")
    if service is None or not isinstance(session_id, str) or not session_id:
        return None
    hops = _hops(tool_context)
    if hops is not None and hops <= 0:
        return None
    from penguiflow_sessions.models import MergeStrategy

    mode = str(marked.get("mode") or getattr(config, "default_mode", "job") or "job").lower()
    parent = tool_context.get("task_id")
    common: dict[str, Any] = {
        "session_id": session_id,
        "parent_task_id": parent if isinstance(parent, str) else None,
        "merge_strategy": MergeStrategy(
            _merge_strategy(
                marked.get("default_merge_strategy")
                or getattr(config, "default_merge_strategy", None)
            )
        ),
        "propagate_on_cancel": getattr(config, "propagate_on_cancel", "cascade"),
        "notify_on_complete": marked.get("notify_on_complete", True) is not False,
        "context_tool_context": {PROACTIVE_HOPS_KEY: hops} if hops is not None else None,
    }
    if mode == "subagent":
        import json

        query = (
            f"Run the tool {spec.name} with the arguments {json.dumps(dict(args), default=str)}"
            " and report its output with a short digest."
        )
        spawned = await service.spawn(query=query, **common)
    else:
        mode = "job"
        spawned = await service.spawn_tool_job(tool_name=spec.name, tool_args=dict(args), **common)
    status = getattr(spawned, "status", "PENDING")
    handle = BackgroundTaskHandle(
        task_id=str(getattr(spawned, "task_id", "")),
        status=str(getattr(status, "value", status) or "PENDING"),
        message=f"spawned:{mode}",
    )
    return handle.model_dump(mode="json")
