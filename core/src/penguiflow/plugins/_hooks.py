"""Loading hook plugins (the `penguiflow` entry-point group) into a pluggy PluginManager.

Entry points are loaded one at a time: one that fails to import or register is recorded and
skipped (or raises in strict mode). pluggy's bulk entry-point loader is never used.

`load_hooks` works in this order, so a plugin may implement hooks that another plugin
declares (pytest's `pytest_addhooks` model) whatever their names sort as:

1. the kernel's hookspecs are added and `penguiflow_addhooks` is called as a historic hook,
   so every plugin registered from then on adds its own specs the moment it registers;
2. every entry point is imported; the hookspec providers (plugins implementing
   `penguiflow_addhooks`) register first, then the others, each checked by pluggy against
   complete specs at its own registration (a mismatch fails that plugin alone), then `extra`;
3. a plugin implementing a hook nobody declares is noted on its record (strict mode raises);
4. the lifecycle hooks and `penguiflow_configure` are guarded per implementation (see
   `_guard`): outside strict mode one plugin's failure is recorded and skipped;
5. `penguiflow_configure(config=host.config)` is called once, as a historic hook.
6. every plugin that failed to load and was skipped is put in the audit trail
   (`penguiflow.audit`, action `plugin.load_failed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import describe_exception
from ._attribution import owner_in_traceback
from ._config import initial_config
from ._discovery import HOOK_GROUP, Candidate, PluginRecord, discover
from ._errors import PluginLoadError
from ._guard import guard_hooks
from ._settings import PluginSettings

if TYPE_CHECKING:
    import pluggy

__all__ = [
    "AUTOLOAD_ENV",
    "HookHost",
    "active_hooks",
    "hookspec_providers",
    "load_hooks",
    "reset_hooks",
    "unknown_hooks",
]

AUTOLOAD_ENV = "PENGUIFLOW_PLUGINS_AUTOLOAD"
_ADDHOOKS = "penguiflow_addhooks"
_active: HookHost | None = None


@dataclass(slots=True)
class HookHost:
    """A plugin manager with every hook plugin registered, what happened to each, and the one
    mutable plugin configuration (`config`) that `penguiflow_configure` adjusts and the hooks
    taking configuration receive."""

    manager: pluggy.PluginManager
    records: list[PluginRecord] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    #: (plugin, hook) pairs whose implementation raised and was skipped (see `_guard`)
    hook_failures: set[tuple[str, str]] = field(default_factory=set)

    @property
    def hook(self) -> Any:
        return self.manager.hook


def _failed(record: PluginRecord, exc: BaseException) -> PluginRecord:
    return replace(
        record,
        status="failed",
        error=f"{type(exc).__name__}: {describe_exception(exc)}",
        remedy=(
            f"fix or reinstall {record.distribution}, or disable it with "
            f"PENGUIFLOW_DISABLE_PLUGINS={record.name}"
        ),
    )


def _load_error(record: PluginRecord, failed: PluginRecord) -> PluginLoadError:
    return PluginLoadError(
        f"hook plugin {record.name!r} ({record.value} from {record.distribution} "
        f"{record.version}) failed to load: {failed.error}; {failed.remedy}"
    )


def unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """The hooks `plugin` implements that no registered plugin (nor the kernel) declares,
    except those marked `@hookimpl(optionalhook=True)`."""
    unknown: list[str] = []
    for caller in manager.get_hookcallers(plugin) or ():
        if caller.has_spec():
            continue
        if any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls()):
            unknown.append(caller.name)
    return sorted(unknown)


def _register(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register, leaving nothing behind when registration (or a historic replay) fails."""
    try:
        manager.register(plugin, name=name)
    except BaseException:
        if manager.is_registered(plugin):
            manager.unregister(plugin)
        raise


def _import_all(
    candidates: Iterable[Candidate], settings: PluginSettings
) -> list[tuple[PluginRecord, object | None]]:
    """Each candidate's record, with its imported plugin (None when it is not usable)."""
    loaded: list[tuple[PluginRecord, object | None]] = []
    for candidate in candidates:
        record = candidate.record
        if record.status != "available":
            loaded.append((record, None))
            continue
        try:
            plugin = candidate.entry_point.load()
        except Exception as exc:
            failed = _failed(record, exc)
            if settings.strict:
                raise _load_error(record, failed) from exc
            loaded.append((failed, None))
            continue
        loaded.append((record, plugin))
    return loaded


def load_hooks(
    settings: PluginSettings | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    extra: list[Any] | None = None,
) -> HookHost:
    """Build a `HookHost` from the installed hook plugins (plus `extra` objects, for tests).

    `host.config` starts as the `PENGUIFLOW_CONFIG` file overlaid with `config` (top-level
    sections), and `penguiflow_configure` may change it before anything uses it."""
    import pluggy

    from .. import hookspecs

    settings = settings if settings is not None else PluginSettings.from_env()
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    host = HookHost(manager=manager, config=initial_config(config))
    getattr(manager.hook, _ADDHOOKS).call_historic(kwargs={"pluginmanager": manager})

    loaded = _import_all(discover(HOOK_GROUP, "hooks", settings), settings)
    providers = [i for i, (_, plugin) in enumerate(loaded) if hasattr(plugin, _ADDHOOKS)]
    others = [
        i for i, (_, plugin) in enumerate(loaded) if plugin is not None and i not in providers
    ]
    for index in [*providers, *others]:
        record, plugin = loaded[index]
        try:
            _register(manager, plugin, record.name)
        except Exception as exc:  # a bad signature, or a name or module registered twice
            failed = _failed(record, exc)
            if settings.strict:
                raise _load_error(record, failed) from exc
            loaded[index] = (failed, None)
            continue
        loaded[index] = (replace(record, status="loaded"), plugin)
    for plugin in extra or ():
        manager.register(plugin)

    for record, plugin in loaded:
        name = record.name
        unknown = unknown_hooks(manager, plugin) if plugin is not None else []
        if unknown:
            problem = (
                f"implements {', '.join(unknown)}, which no loaded plugin declares (never called)"
            )
            remedy = (
                "fix the hook name, install the plugin that declares it, or mark the "
                "implementation @hookimpl(optionalhook=True)"
            )
            if settings.strict:
                raise PluginLoadError(
                    f"hook plugin {name!r} ({record.value} from {record.distribution} "
                    f"{record.version}) {problem}; {remedy}"
                )
            record = replace(record, error=problem, remedy=remedy)
        host.records.append(record)

    guard_hooks(host, strict=settings.strict)
    _configure(host)
    _audit_failures(host)
    return host


def _audit_failures(host: HookHost) -> None:
    """Put every plugin that failed to load (and was skipped) in the audit trail."""
    failed = [record for record in host.records if record.status == "failed"]
    if not failed:
        return
    from .. import audit  # imported only when something failed: loading stays light

    for record in failed:
        audit.record_soon(
            "plugin.load_failed",
            source="plugins",
            target=record.name,
            outcome="failed",
            details={
                "group": record.group,
                "entry_point": record.value,
                "distribution": record.distribution,
                "version": record.version,
                "error": record.error,
                "remedy": record.remedy,
            },
        )


def _configure(host: HookHost) -> None:
    """Call `penguiflow_configure` once; a failure names the plugin whose code raised."""
    caller = host.hook.penguiflow_configure
    try:
        caller.call_historic(kwargs={"config": host.config})
    except Exception as exc:
        culprit = owner_in_traceback(caller, exc.__traceback__)
        who = f"hook plugin {culprit!r}" if culprit else "a hook plugin"
        raise PluginLoadError(
            f"{who} failed in penguiflow_configure: {type(exc).__name__}: "
            f"{describe_exception(exc)}; fix its configuration, or disable it with "
            f"PENGUIFLOW_DISABLE_PLUGINS={culprit or '<plugin>'}"
        ) from exc


def hookspec_providers(settings: PluginSettings) -> list[tuple[str, object]]:
    """The installed hook plugins that declare hookspecs (implement `penguiflow_addhooks`),
    by entry-point name; the ones that fail to import are left out.

    For conformance checks of a plugin on its own: the providers' specs are needed to judge
    it, the other plugins are not."""
    found: list[tuple[str, object]] = []
    for candidate in discover(HOOK_GROUP, "hooks", settings):
        if candidate.record.status != "available":
            continue
        try:
            plugin = candidate.entry_point.load()
        except Exception:  # a broken neighbour is load_hooks' to report, not this check's
            continue
        if hasattr(plugin, _ADDHOOKS):
            found.append((candidate.record.name, plugin))
    return found


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
