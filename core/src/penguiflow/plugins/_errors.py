"""The plugin errors, as a tree:

PluginError
├── PluginLoadError        a plugin failed to import or register (strict mode, or chosen)
├── DriverNotFoundError    no installed driver has that name or scheme (also a LookupError)
└── DriverConflictError    two installed drivers claim the same name or scheme
"""

from __future__ import annotations

__all__ = ["DriverConflictError", "DriverNotFoundError", "PluginError", "PluginLoadError"]


class PluginError(Exception):
    """Base class of every plugin-system error."""


class PluginLoadError(PluginError):
    """A plugin could not be imported or registered."""


class DriverNotFoundError(PluginError, LookupError):
    """No installed (and enabled) driver matches the requested name or URL scheme."""


class DriverConflictError(PluginError):
    """Several installed drivers claim the same name; uninstall or disable one of them."""
