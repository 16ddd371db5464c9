"""`penguiflow.steering`: PenguiFlow's steering import path, served by the sessions plugin.

`from penguiflow.steering import SteeringEvent` gives `penguiflow_sessions.steering`'s class
itself; `penguiflow.steering.steering` and `penguiflow.steering.guard_inbox` (PenguiFlow's two
submodules) are both that module. Without `penguiflow-sessions` installed, importing this
package raises `MissingPluginError` (an `ImportError`) saying how to install it.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

from .._plugin_imports import import_plugin_module as _import_plugin_module
from .._plugin_imports import plugin_attribute as _plugin_attribute

if TYPE_CHECKING:
    from typing import Any

_DISTRIBUTION = "penguiflow-sessions"
# The package first: when it is missing, that is the error worth reporting ("not installed"),
# not the submodule's.
_import_plugin_module("penguiflow_sessions", distribution=_DISTRIBUTION, wanted=__name__)
_PLUGIN = _import_plugin_module(
    "penguiflow_sessions.steering", distribution=_DISTRIBUTION, wanted=__name__
)

#: The modules reachable as `penguiflow.steering.<name>` (one file here each).
_SUBMODULES = ("guard_inbox", "steering")

#: PenguiFlow 3.11's `penguiflow.steering` names (see `penguiflow.sessions`).
_PENGUIFLOW_NAMES = frozenset(
    {
        "InMemoryGuardInbox", "MAX_STEERING_DEPTH", "MAX_STEERING_KEYS",
        "MAX_STEERING_LIST_ITEMS", "MAX_STEERING_PAYLOAD_BYTES", "MAX_STEERING_STRING",
        "SteeringCancelled", "SteeringEvent", "SteeringEventType", "SteeringGuardEvent",
        "SteeringGuardInbox", "SteeringGuardResponse", "SteeringInbox",
        "SteeringValidationError", "_sanitize_value", "sanitize_payload",
        "sanitize_steering_event", "validate_steering_event",
    }
)  # fmt: skip

__all__: list[str] = list(_PLUGIN.__all__)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in __all__ or name in _PENGUIFLOW_NAMES:
        value = _plugin_attribute(
            _PLUGIN, name, distribution=_DISTRIBUTION, wanted=f"{__name__}.{name}"
        )
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    dunders = {name for name in globals() if name.startswith("__") and name.endswith("__")}
    return sorted({*dunders, *__all__, *_SUBMODULES})
