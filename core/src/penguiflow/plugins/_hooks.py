"""Loading hook plugins (the `penguiflow` entry-point group) into a pluggy PluginManager.

Entry points are loaded one at a time: one that fails to import or register is recorded and
skipped (or raises in strict mode). pluggy's bulk entry-point loader is never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ._discovery import HOOK_GROUP, PluginRecord, discover
from ._errors import PluginLoadError
from ._settings import PluginSettings

if TYPE_CHECKING:
    import pluggy

__all__ = ["AUTOLOAD_ENV", "HookHost", "active_hooks", "load_hooks", "reset_hooks"]

AUTOLOAD_ENV = "PENGUIFLOW_PLUGINS_AUTOLOAD"
_active: HookHost | None = None


@dataclass(slots=True)
class HookHost:
    """A plugin manager with every hook plugin registered, and what happened to each."""

    manager: pluggy.PluginManager
    records: list[PluginRecord] = field(default_factory=list)

    @property
    def hook(self) -> Any:
        return self.manager.hook


def load_hooks(
    settings: PluginSettings | None = None, *, extra: list[Any] | None = None
) -> HookHost:
    """Build a `HookHost` from the installed hook plugins (plus `extra` objects, for tests)."""
    import pluggy

    from .. import hookspecs

    settings = settings if settings is not None else PluginSettings.from_env()
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    host = HookHost(manager=manager)
    for candidate in discover(HOOK_GROUP, "hooks", settings):
        record = candidate.record
        if record.status != "available":
            host.records.append(record)
            continue
        try:
            plugin = candidate.entry_point.load()
            manager.register(plugin, name=record.name)
        except Exception as exc:
            failed = replace(
                record,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                remedy=(
                    f"fix or reinstall {record.distribution}, or disable it with "
                    f"PENGUIFLOW_DISABLE_PLUGINS={record.name}"
                ),
            )
            if settings.strict:
                raise PluginLoadError(
                    f"hook plugin {record.name!r} ({record.value} from {record.distribution} "
                    f"{record.version}) failed to load: {failed.error}; {failed.remedy}"
                ) from exc
            host.records.append(failed)
            continue
        host.records.append(replace(record, status="loaded"))
    for plugin in extra or ():
        manager.register(plugin)
    manager.hook.penguiflow_configure(config={})
    return host


def active_hooks() -> HookHost | None:
    """The process-wide hook host flows use at run()/stop(), loaded on first use.

    `None` when `PENGUIFLOW_PLUGINS_AUTOLOAD=0` and no host was installed with `reset_hooks`
    (tests use it to stay independent of what happens to be installed), or when no hook
    plugin is loaded, so flows skip hooks entirely."""
    global _active
    import os

    if _active is None:
        # A host installed with reset_hooks(host) is used even when autoload is off.
        if os.environ.get(AUTOLOAD_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
            return None
        _active = load_hooks()
    return _active if _active.manager.get_plugins() else None


def reset_hooks(host: HookHost | None = None) -> None:
    """Forget the process-wide hook host (or install `host`); the next flow reloads it."""
    global _active
    _active = host
