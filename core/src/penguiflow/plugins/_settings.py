"""Which plugins may load: the disable list and strict mode, from environment and config."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

__all__ = ["DISABLE_ENV", "STRICT_ENV", "PluginSettings"]

DISABLE_ENV = "PENGUIFLOW_DISABLE_PLUGINS"
STRICT_ENV = "PENGUIFLOW_STRICT_PLUGINS"

_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """`disabled` holds entry-point names (`redis`), group-qualified ones
    (`penguiflow.state_stores:redis`), a whole group (`penguiflow:*`), distribution names
    (`penguiflow-prometheus`: every entry point that distribution installs) or everything
    (`*`); a disabled plugin is never imported. In `strict` mode a
    plugin that fails to load raises instead of being recorded and skipped."""

    disabled: frozenset[str] = frozenset()
    strict: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PluginSettings:
        env = os.environ if environ is None else environ
        raw = env.get(DISABLE_ENV, "")
        disabled = frozenset(part.strip() for part in raw.split(",") if part.strip())
        strict = env.get(STRICT_ENV, "").strip().lower() in _TRUE
        return cls(disabled=disabled, strict=strict)

    def merged(self, *, disabled: Iterable[str] = (), strict: bool | None = None) -> PluginSettings:
        """These settings plus configuration given in code (which can only add restrictions
        to the disable list, and sets strict mode when given)."""
        return replace(
            self,
            disabled=self.disabled | frozenset(disabled),
            strict=self.strict if strict is None else strict,
        )

    def is_disabled(self, group: str, name: str, distribution: str | None = None) -> bool:
        """Whether the entry point `name` of `group`, installed by `distribution`, is off."""
        disabled = self.disabled
        if not disabled:
            return False
        if name in disabled or f"{group}:{name}" in disabled:
            return True
        if f"{group}:*" in disabled or "*" in disabled:
            return True
        # Users name the package they installed (`penguiflow-prometheus`), whatever its
        # entry points are called; spellings differ only as PEP 503 allows.
        return distribution is not None and _normalized(distribution) in {
            _normalized(item) for item in disabled
        }


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
