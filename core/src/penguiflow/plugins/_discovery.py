"""Entry-point discovery from installed metadata only: nothing is imported here."""

from __future__ import annotations

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


def discover(group: str, kind: str, settings: PluginSettings) -> list[Candidate]:
    """Every entry point of `group`, classified as available, disabled or skipped."""
    candidates: list[Candidate] = []
    for entry_point in sorted(metadata.entry_points(group=group), key=lambda ep: ep.name):
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        status: PluginStatus = "available"
        error = remedy = None
        if settings.is_disabled(group, entry_point.name):
            status = "disabled"
            remedy = "remove it from PENGUIFLOW_DISABLE_PLUGINS (or the plugin config) to use it"
        else:
            problem = _kernel_requirement_problem(dist)
            if problem is not None:
                status, error = "skipped", problem
                remedy = f"upgrade one side: pip install -U {dist_name} penguiflow"
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
