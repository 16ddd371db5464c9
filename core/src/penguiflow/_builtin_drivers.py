"""The kernel's own drivers, registered through the same entry points as everyone else's."""

from __future__ import annotations

from typing import Any

from .bus import InMemoryMessageBus
from .errors import InvalidTypeError
from .resources import AsyncResource
from .state.in_memory import InMemoryStateStore

__all__ = [
    "LocalRuntime",
    "append_join",
    "human_gated_join",
    "memory_message_bus",
    "memory_state_store",
    "none_memory",
    "replace_join",
    "scripted_llm_adapter",
    "truncation_memory",
]


def _no_options(spec: str, options: dict[str, Any], accepted: set[str]) -> None:
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InvalidTypeError(
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


class LocalRuntime(AsyncResource):
    """`local`: the in-process runtime (one worker task per node, bounded asyncio queues)."""

    name = "local"

    def __init__(self, spec: str = "local", **options: Any) -> None:
        _no_options(spec, options, set())

    def create_flow(self, definition: Any, **options: Any) -> Any:
        """A `PenguiFlow` for `definition` (`middlewares`, `state_store`, `message_bus`)."""
        from ._flow import PenguiFlow

        unknown = sorted(set(options) - {"middlewares", "state_store", "message_bus"})
        if unknown:
            raise InvalidTypeError(
                f"the local runtime got unknown option(s) {unknown}; accepted: "
                "['message_bus', 'middlewares', 'state_store']"
            )
        nodes = definition.nodes
        adjacencies = [
            (node, tuple(nodes[successor] for successor in definition.successors[name]))
            for name, node in nodes.items()
        ]
        return PenguiFlow(
            *adjacencies,
            queue_maxsize=definition.queue_maxsize,
            allow_cycles=True,  # define_flow already checked the graph
            emit_errors_to_rookery=definition.emit_errors_to_rookery,
            payload_types=definition.payload_types,
            **options,
        )

    async def aclose(self) -> None:
        """The local runtime holds nothing between flows."""


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


def append_join(name: str, **options: Any) -> Any:
    """`append`: every branch in plan order, failures included, with counts."""
    from .joins import AppendJoin

    _no_options(name, options, set())
    return AppendJoin()


def replace_join(name: str, **options: Any) -> Any:
    """`replace`: the last successful output, failures listed beside it."""
    from .joins import ReplaceJoin

    _no_options(name, options, set())
    return ReplaceJoin()


def human_gated_join(name: str, **options: Any) -> Any:
    """`human_gated`: pause for a human with every branch attached (`reason=` to word it)."""
    from .joins import HumanGatedJoin

    _no_options(name, options, {"reason"})
    return HumanGatedJoin(**options)
