"""The hooks a plugin may implement (pluggy project name `penguiflow`).

Hooks run synchronously at composition time — when a flow is built, started or stopped, or
when a catalogue is assembled — and return objects whose methods are async. They are never
called per message. Hooks are always called with keyword arguments (pluggy refuses positional
calls), so an implementation names only the arguments it needs; arguments are only ever added,
never renamed or removed.

A plugin is a module or object with functions marked `@hookimpl`, registered through the
`penguiflow` entry-point group:

    [project.entry-points."penguiflow"]
    myplugin = "myplugin.hooks"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._flow import PenguiFlow
    from .middlewares import Middleware

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "penguiflow"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def penguiflow_configure(config: dict[str, Any]) -> None:
    """Adjust configuration before anything is built.

    `config` is the mutable plugin configuration mapping (for example the `disabled` list, a
    connector's settings). Called once per plugin manager, right after plugins are loaded."""


@hookspec
def penguiflow_register_connectors(config: dict[str, Any]) -> list[Any]:
    """Return connectors (objects with a `name` and async methods that list and call tools).

    Each connector's tools are namespaced `<connector name>.<tool>`; two connectors with the
    same name are an error naming both plugins."""


@hookspec
def penguiflow_register_join_strategies() -> dict[str, Any]:
    """Return join strategies by name (how parallel tool results are combined).

    Names must be unique across plugins; a collision is an error naming both plugins."""


@hookspec
def penguiflow_register_memory_strategies() -> dict[str, Any]:
    """Return memory strategy factories by name, in addition to the
    `penguiflow.memory_strategies` driver group (for plugins that build them dynamically)."""


@hookspec
def penguiflow_register_llm_adapters() -> dict[str, Any]:
    """Return LLM adapter factories by name, in addition to the `penguiflow.llm_adapters`
    driver group."""


@hookspec
def penguiflow_observability_sinks(flow: PenguiFlow) -> list[Middleware]:
    """Return middlewares (async FlowEvent subscribers) to attach to `flow` when it starts.

    Return an empty list to observe nothing for this flow."""


@hookspec
def penguiflow_planner_sinks(planner: Any) -> list[Middleware]:
    """Return middlewares (async FlowEvent subscribers) for a planner's events.

    Called once per planner, on its first run. Events are `FlowEvent`s whose `event_type`
    is `planner_<kind>` (step_start, step_finish, tool_call, repair, pause, resume, budget,
    reflection, finish), `trace_id` the run's id and `extra` the details."""


@hookspec
def penguiflow_flow_startup(flow: PenguiFlow) -> None:
    """Called when `flow.run()` starts the flow, after its workers exist."""


@hookspec
def penguiflow_flow_shutdown(flow: PenguiFlow) -> None:
    """Called when `flow.stop()` has stopped the flow."""
