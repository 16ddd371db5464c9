"""The plugin host: hook plugins (pluggy) and drivers, found through entry points.

- `resolve_driver("state_store", "sqlite:///flows.db")` builds the one driver a URL or name
  selects; only that driver is imported. Join strategies, memory strategies and LLM adapters
  are drivers too (chosen by name).
- `load_hooks()` registers every hook plugin of the `penguiflow` group, one at a time; a broken
  plugin is recorded and skipped (strict mode raises). The host keeps one mutable plugin
  configuration (`host.config`) that `penguiflow_configure` adjusts.
- `collect_connectors(host)` calls `penguiflow_register_connectors` once, through pluggy, and
  attributes each registered connector to its plugin.
- `list_plugins()` describes everything installed; with `include_hooks=False` it reads
  metadata only. `check_plugins()` imports every driver and loads every hook plugin, so a
  broken one is found before a flow chooses it (`penguiflow plugins check`).
- `PENGUIFLOW_DISABLE_PLUGINS=name,group:name` disables plugins (built-ins too);
  `PENGUIFLOW_STRICT_PLUGINS=1` turns load failures into errors; `PENGUIFLOW_CONFIG` names a
  TOML or JSON file of plugin configuration.
"""

from __future__ import annotations

from ._check import check_plugins, check_result
from ._config import CONFIG_ENV
from ._discovery import HOOK_GROUP, PluginRecord, PluginStatus, discover
from ._drivers import DRIVER_KINDS, DriverKind, resolve_driver
from ._errors import (
    DriverConflictError,
    DriverNotFoundError,
    PluginConfigError,
    PluginError,
    PluginLoadError,
)
from ._hooks import AUTOLOAD_ENV, HookHost, active_hooks, load_hooks, reset_hooks
from ._registries import ConnectorRegistrar, collect_connectors
from ._settings import DISABLE_ENV, STRICT_ENV, PluginSettings

__all__ = [
    "AUTOLOAD_ENV",
    "CONFIG_ENV",
    "DISABLE_ENV",
    "DRIVER_KINDS",
    "HOOK_GROUP",
    "STRICT_ENV",
    "ConnectorRegistrar",
    "DriverConflictError",
    "DriverKind",
    "DriverNotFoundError",
    "HookHost",
    "PluginConfigError",
    "PluginError",
    "PluginLoadError",
    "PluginRecord",
    "PluginSettings",
    "PluginStatus",
    "active_hooks",
    "check_plugins",
    "check_result",
    "collect_connectors",
    "list_plugins",
    "load_hooks",
    "reset_hooks",
    "resolve_driver",
]


def list_plugins(
    settings: PluginSettings | None = None, *, include_hooks: bool = True
) -> list[PluginRecord]:
    """Every installed hook plugin and driver with its status.

    Drivers are reported from metadata (`available`, `disabled`, `skipped`): they are imported
    only when chosen. Hook plugins are loaded (`loaded` or `failed`) when `include_hooks`, and
    reported from metadata otherwise."""
    settings = settings if settings is not None else PluginSettings.from_env()
    records: list[PluginRecord] = []
    if include_hooks:
        records.extend(load_hooks(settings).records)
    else:
        records.extend(c.record for c in discover(HOOK_GROUP, "hooks", settings))
    for kind in DRIVER_KINDS.values():
        records.extend(c.record for c in discover(kind.group, kind.kind, settings))
    return records
