"""PenguiFlow's PostgreSQL plugin. Importing it imports nothing from asyncpg."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import PostgresStateStore

__all__ = ["PostgresStateStore"]


def __getattr__(name: str) -> Any:
    if name == "PostgresStateStore":
        from .store import PostgresStateStore

        return PostgresStateStore
    raise AttributeError(f"module 'penguiflow_postgres' has no attribute {name!r}")
