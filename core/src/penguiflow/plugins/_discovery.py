"""Entry-point discovery from installed metadata only: nothing is imported here."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Literal

from .._version import __version__ as KERNEL_VERSION
from ._settings import PluginSettings

__all__ = ["HOOK_GROUP", "Candidate", "PluginRecord", "PluginStatus", "discover"]

HOOK_GROUP = "penguiflow"

PluginStatus = Literal["loaded", "available", "disabled", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class PluginRecord:
    """One installed plugin or driver, as `penguiflow plugins list` shows it."""

    name: str
    group: str
    kind: str
    distribution: str | None
    version: str | None
    value: str
    status: PluginStatus
    error: str | None = None
    remedy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entry point with its distribution and what the metadata says about loading it."""

    entry_point: metadata.EntryPoint
    record: PluginRecord


def _kernel_requirement_problem(dist: metadata.Distribution | None) -> str | None:
    """Why `dist` cannot run on this kernel (from its declared `penguiflow` requirement)."""
    if dist is None or dist.metadata["Name"] == "penguiflow":
        return None
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import Version

    for raw in dist.requires or ():
        try:
            requirement = Requirement(raw)
        except InvalidRequirement:
            continue
        if requirement.name.lower() != "penguiflow" or requirement.marker is not None:
            continue
        if not requirement.specifier.contains(Version(KERNEL_VERSION), prereleases=True):
            return (
                f"requires penguiflow{requirement.specifier} but penguiflow {KERNEL_VERSION} "
                "is installed"
            )
    return None


class _Installed:
    """The entry points of the installed distributions, read again only when `sys.path` or
    one of its folders changed.

    Reading every distribution's metadata costs milliseconds, and a planner or flow asks for
    drivers each time it is built. Installing or removing a distribution changes the
    modification time of the folder it lands in (a new `*.dist-info`), so that time (with
    the path itself) tells when what is cached went stale; a driver installed while the
    process runs is found at once."""

    def __init__(self) -> None:
        self._key: tuple[tuple[str, float], ...] | None = None
        self._groups: dict[str, list[_Entry]] = {}

    def entries(self, group: str) -> list[_Entry]:
        key = _path_state()
        if key != self._key:
            self._key = key
            self._groups = {}
        found = self._groups.get(group)
        if found is None:
            found = self._groups[group] = _read(group)
        return found


@dataclass(frozen=True, slots=True)
class _Entry:
    entry_point: metadata.EntryPoint
    distribution: str | None
    version: str | None
    #: why the kernel cannot run it (its `penguiflow` requirement), if it cannot
    problem: str | None


def _path_state() -> tuple[tuple[str, float], ...]:
    state = []
    for folder in sys.path:
        try:
            state.append((folder, os.stat(folder or ".").st_mtime))
        except OSError:
            state.append((folder, -1.0))
    return tuple(state)


def _read(group: str) -> list[_Entry]:
    entries = []
    for entry_point in sorted(metadata.entry_points(group=group), key=lambda ep: ep.name):
        dist = entry_point.dist
        entries.append(
            _Entry(
                entry_point=entry_point,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
                problem=_kernel_requirement_problem(dist),
            )
        )
    return entries


_installed = _Installed()


def discover(group: str, kind: str, settings: PluginSettings) -> list[Candidate]:
    """Every entry point of `group`, classified as available, disabled or skipped."""
    candidates: list[Candidate] = []
    for entry in _installed.entries(group):
        entry_point = entry.entry_point
        dist_name, version = entry.distribution, entry.version
        status: PluginStatus = "available"
        error = remedy = None
        if settings.is_disabled(group, entry_point.name, dist_name):
            status = "disabled"
            remedy = "remove it from PENGUIFLOW_DISABLE_PLUGINS (or the plugin config) to use it"
        elif entry.problem is not None:
            status, error = "skipped", entry.problem
            # Not `pip install -U penguiflow`: on PyPI that name is the 3.x library.
            remedy = (
                f"upgrade one side: `pip install -U {dist_name}`, or install a penguiflow it "
                "accepts (from a checkout: `pip install ./core`)"
            )
        record = PluginRecord(
            name=entry_point.name,
            group=group,
            kind=kind,
            distribution=dist_name,
            version=version,
            value=entry_point.value,
            status=status,
            error=error,
            remedy=remedy,
        )
        candidates.append(Candidate(entry_point, record))
    return candidates
