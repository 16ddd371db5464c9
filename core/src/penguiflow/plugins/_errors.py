"""The plugin errors, as a tree (every one is a `penguiflow.errors.PenguiFlowError`):

PluginError
├── PluginLoadError        a plugin failed to import or register (strict mode, or chosen)
├── PluginConfigError      the plugin configuration file cannot be read (also a ValueError)
├── DriverNotFoundError    no installed driver has that name or scheme (also a LookupError)
└── DriverConflictError    two installed drivers claim the same name or scheme
"""

from __future__ import annotations

from ..errors import PenguiFlowError

__all__ = [
    "DriverConflictError",
    "DriverNotFoundError",
    "PluginConfigError",
    "PluginError",
    "PluginLoadError",
]


class PluginError(PenguiFlowError):
    """Base class of every plugin-system error."""


class PluginLoadError(PluginError):
    """A plugin could not be imported or registered."""


class PluginConfigError(PluginError, ValueError):
    """The plugin configuration (`PENGUIFLOW_CONFIG`) is missing, unreadable or not a table."""


class DriverNotFoundError(PluginError, LookupError):
    """No installed (and enabled) driver matches the requested name or URL scheme."""


class DriverConflictError(PluginError):
    """Several installed drivers claim the same name; uninstall or disable one of them."""
