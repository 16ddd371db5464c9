"""The hooks a plugin may implement (pluggy project name `penguiflow`).

Hooks are for many-at-once contributions: connectors, observability sinks, lifecycle and
configuration. Anything chosen by a name or URL (state store, bus, runtime, LLM adapter, memory
strategy, join strategy) is a driver in its own entry-point group instead, never a hook.

Hooks run synchronously at composition time — when a flow is built, started or stopped, or
when a catalogue is assembled — and return objects whose methods are async. They are never
called per message. Hooks are always called with keyword arguments (pluggy refuses positional
calls), so an implementation names only the arguments it needs; arguments are only ever added,
never renamed or removed.

A plugin is a module or object with functions marked `@hookimpl`, registered through the
`penguiflow` entry-point group:

    [project.entry-points."penguiflow"]
    myplugin = "myplugin.hooks"

A plugin that calls hooks of its own declares them with `penguiflow_addhooks` (the planner's
`penguiflow_planner_sinks` lives in `penguiflow_planner.hookspecs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:
    from .middlewares import Middleware
    from .observability import EventSink
    from .plugins import ConnectorRegistrar

__all__ = ["PROJECT", "FlowRole", "hookimpl", "hookspec"]

PROJECT = "penguiflow"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Where a flow's hooks run: `local` (an in-process flow), `client` (the process that emits
#: and fetches on a distributed runtime) or `worker` (a process running nodes for one).
FlowRole = Literal["local", "client", "worker"]

#: What the lifecycle hooks receive as `flow`: a `penguiflow.runtime.Flow` (the in-process
#: `PenguiFlow`, or a distributed runtime's flow). Typed loosely because this module sits at
#: the base layer, below the runtime that defines the protocol.
FlowArg = Any


@hookspec(historic=True)
def penguiflow_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Declare hooks of your own: call `pluginmanager.add_hookspecs(your_hookspecs_module)`.

    Called for every plugin as it is registered (a historic hook), before the plugins that
    are not hookspec providers register, so a plugin implementing your hooks is checked
    against your specs whatever the load order."""


@hookspec(historic=True)
def penguiflow_configure(config: dict[str, Any]) -> None:
    """Adjust the plugin configuration before anything is built.

    `config` is the host's one mutable configuration mapping (`HookHost.config`: the
    `PENGUIFLOW_CONFIG` file overlaid with the `config` given to `load_hooks`). Change it in
    place; later hook calls that take configuration (`penguiflow_register_connectors`) see the
    change. Called once per host, after every plugin is registered (and for a plugin
    registered later, as it registers)."""


@hookspec
def penguiflow_register_connectors(register: ConnectorRegistrar, config: dict[str, Any]) -> None:
    """Contribute connectors: call `register(connector)` for each one (an object with a
    `name` and async methods that list and call tools); return nothing.

    `config` is the host's configuration (`HookHost.config` unless the caller passes
    another). Each registration is attributed to your plugin, so two connectors with the same
    name are an error naming both plugins; each connector's tools are namespaced
    `<connector name>.<tool>`. `register.connectors` lists what has been registered so far,
    for a `wrapper=True` implementation that wants to see the other plugins' contributions."""


@hookspec
def penguiflow_observability_sinks(flow: FlowArg, role: FlowRole) -> list[Middleware]:
    """Return middlewares (async FlowEvent subscribers) to attach to `flow` when it starts.

    `role` says which process this is (`local`, `client` or `worker`, see `FlowRole`); each
    process of a distributed flow calls the hook for the events it sees. Return an empty list
    to observe nothing for this flow."""


@hookspec
def penguiflow_event_sinks(config: dict[str, Any]) -> list[EventSink]:
    """Return event sinks: async callables given every `penguiflow.observability.Event` this
    process publishes (flow, planner, LLM, connector, session and remote events alike).

    Called once per process (again after `penguiflow.plugins.reset_hooks`), with the host's
    configuration; return an empty list to receive nothing. A sink must be quick or hand the
    event to a queue of its own: producers await it. A failing sink is logged, never raised."""


@hookspec
def penguiflow_flow_startup(flow: FlowArg, role: FlowRole) -> None:
    """Called when `flow` starts in this process, after its workers exist.

    `role` is `local` (in-process flow), `client` (emits and fetches on a distributed
    runtime) or `worker` (runs nodes for a distributed runtime)."""


@hookspec
def penguiflow_flow_shutdown(flow: FlowArg, role: FlowRole) -> None:
    """Called when `flow` has stopped in this process (`role` as for the startup hook)."""
