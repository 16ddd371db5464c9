"""The planner's hook plugin (entry point `penguiflow-planner` in the `penguiflow` group).

It brings the planner's own hookspecs (`penguiflow_planner.hookspecs`) to the hook host, so
plugins implementing `penguiflow_planner_sinks` are checked against them. The module needs
only the specs, and the package's `__init__` loads names on first use, so loading the hook
plugin imports no planner code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from penguiflow.hookspecs import hookimpl

from . import hookspecs

if TYPE_CHECKING:
    import pluggy

__all__ = ["penguiflow_addhooks"]


@hookimpl
def penguiflow_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
