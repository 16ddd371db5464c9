"""`penguiflow.artifacts`: PenguiFlow's artifacts import path, served by the planner plugin.

Artifacts (large or binary results kept out of prompts and returned by reference) are the
planner's: with `penguiflow-planner` installed this module is `penguiflow_planner.artifacts`
itself (see `penguiflow.planner` for how the path is forwarded); without it, importing it
raises `MissingPluginError` saying how to install the plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._plugin_imports import alias_plugin_module

alias_plugin_module(__name__, "penguiflow_planner.artifacts", distribution="penguiflow-planner")

if TYPE_CHECKING:
    # Never runs: the module above replaced this one. It lets type checkers accept the
    # plugin's names imported through this path (as Any) without the kernel naming them.
    def __getattr__(name: str) -> Any: ...
