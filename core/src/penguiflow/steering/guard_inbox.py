"""`penguiflow.steering.guard_inbox`: the sessions plugin's module
`penguiflow_sessions.steering` itself.

See `penguiflow.steering` for how the path is forwarded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._plugin_imports import alias_plugin_module

alias_plugin_module(__name__, "penguiflow_sessions.steering", distribution="penguiflow-sessions")

if TYPE_CHECKING:
    # Never runs: the module above replaced this one. It lets type checkers accept the
    # plugin's names imported through this path (as Any) without the kernel naming them.
    def __getattr__(name: str) -> Any: ...
