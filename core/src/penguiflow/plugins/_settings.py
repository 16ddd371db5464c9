"""Which plugins may load: the disable list and strict mode, from environment and config."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

__all__ = ["DISABLE_ENV", "STRICT_ENV", "PluginSettings"]

DISABLE_ENV = "PENGUIFLOW_DISABLE_PLUGINS"
STRICT_ENV = "PENGUIFLOW_STRICT_PLUGINS"

_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """`disabled` holds entry-point names (`redis`), group-qualified ones
    (`penguiflow.state_stores:redis`), a whole group (`penguiflow:*`) or everything (`*`);
    a disabled plugin is never imported. In `strict` mode a
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

    def is_disabled(self, group: str, name: str) -> bool:
        disabled = self.disabled
        return bool(disabled) and (
            name in disabled
            or f"{group}:{name}" in disabled
            or f"{group}:*" in disabled
            or "*" in disabled
        )
