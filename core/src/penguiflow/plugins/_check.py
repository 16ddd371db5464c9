"""Checking every installed plugin by importing it (`penguiflow plugins check`).

Listing reads metadata only, so a driver whose module cannot be imported is listed as
`available` until someone chooses it. A check imports each driver from its entry point, the way
choosing it would (nothing is built: a driver's factory needs a URL or options), and loads the
hook plugins, so every broken plugin is found at once instead of at the first flow that needs
it. Disabled and skipped plugins are reported as they are and never imported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from ..errors import describe_exception
from ._discovery import Candidate, PluginRecord, discover
from ._drivers import DRIVER_KINDS, DriverKind, load_driver
from ._errors import PluginLoadError
from ._hooks import load_hooks
from ._settings import PluginSettings

__all__ = ["check_plugins", "check_result"]


def check_result(record: PluginRecord) -> str:
    """What a check found for one record: `ok` (imported and, for a hook plugin, registered
    and configured), `failed`, or `disabled` / `skipped` (not imported, so not checked).

    A hook plugin that loaded but implements a hook nobody declares counts as failed: strict
    mode refuses it, and its implementation would never be called."""
    if record.status == "loaded":
        return "failed" if record.error else "ok"
    return record.status


def check_plugins(settings: PluginSettings | None = None) -> list[PluginRecord]:
    """Every installed hook plugin and driver, imported: `loaded` records passed, `failed`
    ones carry the error and a remedy (see `check_result`).

    Strict mode is ignored: the point is to report every broken plugin, not the first."""
    settings = settings if settings is not None else PluginSettings.from_env()
    settings = settings.merged(strict=False)
    records = list(load_hooks(settings).records)
    for kind in DRIVER_KINDS.values():
        records.extend(_check_drivers(kind, discover(kind.group, kind.kind, settings)))
    return records


def _check_drivers(kind: DriverKind, candidates: list[Candidate]) -> list[PluginRecord]:
    claims: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if candidate.record.status == "available":
            claims[candidate.record.name].append(candidate)
    checked: list[PluginRecord] = []
    for candidate in candidates:
        record = candidate.record
        if record.status != "available":
            checked.append(record)
            continue
        rivals = [c for c in claims[record.name] if c is not candidate]
        if rivals:
            # Each imports, perhaps, but choosing the name fails: that is a broken install.
            others = ", ".join(f"{c.record.distribution} {c.record.version}" for c in rivals)
            checked.append(
                replace(
                    record,
                    status="failed",
                    error=f"{kind.label} {record.name!r} is also claimed by {others}",
                    remedy=(
                        "uninstall one of them, or disable one with "
                        f"PENGUIFLOW_DISABLE_PLUGINS={kind.group}:{record.name}"
                    ),
                )
            )
            continue
        try:
            load_driver(kind, candidate)
        except PluginLoadError as exc:
            checked.append(_failed(kind, record, exc.__cause__ or exc))
            continue
        checked.append(replace(record, status="loaded"))
    return checked


def _failed(kind: DriverKind, record: PluginRecord, error: BaseException) -> PluginRecord:
    disable = f"PENGUIFLOW_DISABLE_PLUGINS={kind.group}:{record.name}"
    missing = getattr(error, "name", None) if isinstance(error, ModuleNotFoundError) else None
    if missing:
        remedy = (
            f"install the module {missing!r} that {record.distribution} imports (a dependency "
            f"it does not declare?), reinstall {record.distribution}, or disable it with "
            f"{disable}"
        )
    else:
        remedy = f"fix or reinstall {record.distribution}, or disable it with {disable}"
    return replace(
        record,
        status="failed",
        error=f"{type(error).__name__}: {describe_exception(error)}",
        remedy=remedy,
    )
