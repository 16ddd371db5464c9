"""PenguiFlow's Redis plugin: state store, message bus and the distributed runtime.

Importing it imports nothing from redis-py; each name loads its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bus import RedisMessageBus
    from .runtime import PayloadTypeError, RedisFlow, RedisRuntime, RedisRuntimeUnavailable
    from .store import RedisStateStore

__all__ = [
    "PayloadTypeError",
    "RedisFlow",
    "RedisMessageBus",
    "RedisRuntime",
    "RedisRuntimeUnavailable",
    "RedisStateStore",
]

_HOMES = {
    "PayloadTypeError": "runtime",
    "RedisFlow": "runtime",
    "RedisMessageBus": "bus",
    "RedisRuntime": "runtime",
    "RedisRuntimeUnavailable": "runtime",
    "RedisStateStore": "store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'penguiflow_redis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
