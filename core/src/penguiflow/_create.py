"""`create()`: build a flow on the runtime the caller picks (in process by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from ._flow import DEFAULT_QUEUE_MAXSIZE, PenguiFlow

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._definition import Flow, Runtime
    from ._graph import Adjacency
    from .bus import MessageBus
    from .middlewares import Middleware
    from .state import StateStore

__all__ = ["create"]


@overload
def create(
    *adjacencies: Adjacency,
    runtime: Literal["local"] | None = None,
    queue_maxsize: int = DEFAULT_QUEUE_MAXSIZE,
    allow_cycles: bool = False,
    middlewares: Sequence[Middleware] | None = None,
    emit_errors_to_rookery: bool = False,
    state_store: StateStore | str | None = None,
    message_bus: MessageBus | str | None = None,
    payload_types: Sequence[type[BaseModel]] = (),
) -> PenguiFlow: ...


@overload
def create(
    *adjacencies: Adjacency,
    runtime: str | Runtime,
    queue_maxsize: int = DEFAULT_QUEUE_MAXSIZE,
    allow_cycles: bool = False,
    middlewares: Sequence[Middleware] | None = None,
    emit_errors_to_rookery: bool = False,
    state_store: StateStore | str | None = None,
    message_bus: MessageBus | str | None = None,
    payload_types: Sequence[type[BaseModel]] = (),
) -> Flow: ...


def create(
    *adjacencies: Adjacency,
    runtime: str | Runtime | None = None,
    queue_maxsize: int = DEFAULT_QUEUE_MAXSIZE,
    allow_cycles: bool = False,
    middlewares: Sequence[Middleware] | None = None,
    emit_errors_to_rookery: bool = False,
    state_store: StateStore | str | None = None,
    message_bus: MessageBus | str | None = None,
    payload_types: Sequence[type[BaseModel]] = (),
) -> Flow:
    """Build a flow from `node.to(successors...)` adjacencies.

    `runtime` picks where it runs: `None` or `"local"` (this process: a `PenguiFlow`), a
    runtime driver's name or URL (`"redis://host:6379/0"`), or a `Runtime` object. Every
    runtime returns a `Flow` with the same programming model; see `PenguiFlow` for the
    options."""
    if runtime is None or runtime == "local":
        return PenguiFlow(
            *adjacencies,
            queue_maxsize=queue_maxsize,
            allow_cycles=allow_cycles,
            middlewares=middlewares,
            emit_errors_to_rookery=emit_errors_to_rookery,
            state_store=state_store,
            message_bus=message_bus,
            payload_types=payload_types,
        )
    from ._definition import define_flow

    driver: Any = runtime
    if isinstance(runtime, str):
        from .plugins import resolve_driver

        driver = resolve_driver("runtime", runtime)
    definition = define_flow(
        *adjacencies,
        allow_cycles=allow_cycles,
        queue_maxsize=queue_maxsize,
        emit_errors_to_rookery=emit_errors_to_rookery,
        payload_types=payload_types,
    )
    flow: Flow = driver.create_flow(
        definition,
        middlewares=list(middlewares or ()),
        state_store=state_store,
        message_bus=message_bus,
    )
    return flow
