"""PenguiFlow's Redis plugin. Importing it imports nothing from redis-py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bus import RedisMessageBus
    from .store import RedisStateStore

__all__ = ["RedisMessageBus", "RedisStateStore"]


def __getattr__(name: str) -> Any:
    if name == "RedisStateStore":
        from .store import RedisStateStore

        return RedisStateStore
    if name == "RedisMessageBus":
        from .bus import RedisMessageBus

        return RedisMessageBus
    raise AttributeError(f"module 'penguiflow_redis' has no attribute {name!r}")
