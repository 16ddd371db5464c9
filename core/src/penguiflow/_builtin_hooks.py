"""The kernel's own hook plugin (entry point `penguiflow: penguiflow-builtins`): the built-in
join strategies, registered like everyone else's so they can be listed and disabled."""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl
from .joins import builtin_join_strategies

__all__ = ["penguiflow_register_join_strategies"]


@hookimpl
def penguiflow_register_join_strategies() -> dict[str, Any]:
    return dict(builtin_join_strategies())
