"""The kernel's own drivers, registered through the same entry points as everyone else's."""

from __future__ import annotations

from typing import Any

from .bus import InMemoryMessageBus
from .state.in_memory import InMemoryStateStore

__all__ = [
    "LocalRuntime",
    "memory_message_bus",
    "memory_state_store",
    "none_memory",
    "scripted_llm_adapter",
    "truncation_memory",
]


def _no_options(spec: str, options: dict[str, Any], accepted: set[str]) -> None:
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(
            f"driver for {spec!r} got unknown option(s) {unknown}; accepted: {sorted(accepted)}"
        )


def memory_state_store(url: str, **options: Any) -> InMemoryStateStore:
    """`memory://`: events and bindings in process memory."""
    _no_options(url, options, set())
    return InMemoryStateStore()


def memory_message_bus(url: str, **options: Any) -> InMemoryMessageBus:
    """`memory://`: envelopes kept in memory (`history=` bounds how many)."""
    _no_options(url, options, {"history"})
    return InMemoryMessageBus(**options)


class LocalRuntime:
    """`local`: the in-process runtime (one worker task per node, bounded asyncio queues)."""

    name = "local"

    def __init__(self, spec: str = "local", **options: Any) -> None:
        _no_options(spec, options, set())

    def create_flow(self, *adjacencies: Any, **kwargs: Any) -> Any:
        from ._flow import PenguiFlow

        return PenguiFlow(*adjacencies, **kwargs)


def scripted_llm_adapter(name: str, **options: Any) -> Any:
    """`scripted`: replies from a script (`replies=[...]`), for tests and demos."""
    from .llm import ScriptedLLMClient

    _no_options(name, options, {"replies", "model", "chunk_size"})
    return ScriptedLLMClient(**options)


def none_memory(name: str, **options: Any) -> Any:
    """`none`: no memory."""
    from .memory import NoMemory

    _no_options(name, options, set())
    return NoMemory()


def truncation_memory(name: str, **options: Any) -> Any:
    """`truncation`: the last turns within a turn and token budget."""
    from .memory import TruncationMemory

    _no_options(name, options, {"max_turns", "max_tokens", "overflow", "state_store"})
    return TruncationMemory(**options)
