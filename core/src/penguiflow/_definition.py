"""A flow's process-independent definition and the runtime contracts (`Flow`, `Runtime`,
`WorkerRuntime`), below the node engine: they describe flows, they do not run them.

Public through `penguiflow.runtime`.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from pydantic import BaseModel

from ._graph import Adjacency, build_graph
from .errors import ConfigurationError, InvalidTypeError, UnknownNameError, describe_exception

if TYPE_CHECKING:
    from .middlewares import Middleware
    from .node import Node
    from .registry import ModelRegistry
    from .state import StateStore, StoredEvent

__all__ = [
    "FAN_IN_ATTRIBUTE",
    "Flow",
    "FlowDefinition",
    "FlowTarget",
    "Runtime",
    "WorkerRuntime",
    "define_flow",
    "definition_of",
    "fan_in_size",
    "load_flow_target",
]

#: The attribute `join_k` sets on its node function: the `k` of the join.
FAN_IN_ATTRIBUTE = "_penguiflow_join_k"


@dataclass(frozen=True, slots=True)
class FlowDefinition:
    """A flow's nodes by name and its edges by name; what every process of a flow shares."""

    nodes: Mapping[str, Node]
    successors: Mapping[str, tuple[str, ...]]
    ingress: tuple[str, ...]
    egress: tuple[str, ...]
    queue_maxsize: int = 64
    emit_errors_to_rookery: bool = False
    #: Pydantic models the flow's messages carry, declared with `create(..., payload_types=)`
    payload_types: tuple[type[BaseModel], ...] = ()

    def node(self, name: str) -> Node:
        """The node called `name`; a `KeyError` lists the names this flow has."""
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(sorted(self.nodes)) or "none"
            raise UnknownNameError(
                f"flow has no node named {name!r}; its nodes are: {known}"
            ) from None

    @property
    def signature(self) -> str:
        """A short stable digest of the graph's shape (node names and edges).

        Processes built from the same code get the same signature; a changed graph gets a new
        one, so old and new deployments never read each other's queues by accident."""
        lines = [
            f"{name}->{','.join(sorted(self.successors[name]))}" for name in sorted(self.nodes)
        ]
        lines.append("in:" + ",".join(sorted(self.ingress)))
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def define_flow(
    *adjacencies: Adjacency,
    allow_cycles: bool = False,
    queue_maxsize: int = 64,
    emit_errors_to_rookery: bool = False,
    payload_types: Sequence[type[BaseModel]] = (),
) -> FlowDefinition:
    """Check `node.to(...)` adjacencies as `create` does, and describe them by node name.

    Distributed runtimes route by name, so two nodes sharing one name are an error here."""
    graph = build_graph(adjacencies, allow_cycles=allow_cycles)
    nodes: dict[str, Node] = {}
    for node in graph.successors:
        name = str(node.name)
        if name in nodes:
            raise ConfigurationError(
                f"two nodes are named {name!r}; a runtime that runs nodes in several processes "
                "routes messages by node name, so give each node a unique Node(..., name=...)"
            )
        nodes[name] = node
    return FlowDefinition(
        nodes=nodes,
        successors={
            str(node.name): tuple(sorted(str(s.name) for s in targets))
            for node, targets in graph.successors.items()
        },
        ingress=tuple(str(node.name) for node in graph.ingress),
        egress=tuple(str(node.name) for node in graph.egress),
        queue_maxsize=queue_maxsize,
        emit_errors_to_rookery=emit_errors_to_rookery,
        payload_types=_models(payload_types),
    )


def fan_in_size(node: Node) -> int | None:
    """`k` if `node` was built by `join_k(name, k)`, else None.

    `join_k` keeps its per-trace buckets in process memory; a runtime that spreads a trace's
    messages over several processes uses this to keep those buckets somewhere shared."""
    size = getattr(node.func, FAN_IN_ATTRIBUTE, None)
    return size if isinstance(size, int) else None


def _models(types: Sequence[type[BaseModel]]) -> tuple[type[BaseModel], ...]:
    for model in types:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidTypeError(
                f"payload_types must be Pydantic model classes, got {model!r}; plain JSON "
                "values (str, numbers, lists, dicts) need no declaration"
            )
    return tuple(types)


def definition_of(flow: Any) -> FlowDefinition:
    """The definition of a built flow: anything with a `definition` (every `Flow` has one)."""
    definition = getattr(flow, "definition", None)
    if not isinstance(definition, FlowDefinition):
        raise InvalidTypeError(
            f"expected a flow built with penguiflow.create(...), got {type(flow).__name__}; "
            "return the flow from your build function"
        )
    return definition


@dataclass(frozen=True, slots=True)
class FlowTarget:
    """What `load_flow_target` found: the flow's definition and, if given, its registry.

    `flow` is the flow object the user's code built: a worker process takes its middlewares,
    state store and message bus from it, so they are configured where the nodes run."""

    definition: FlowDefinition
    registry: ModelRegistry | None
    source: str
    flow: Any = None


def load_flow_target(spec: str) -> FlowTarget:
    """Import `module:attribute` and turn it into a flow definition.

    The attribute is a flow, or a function with no arguments returning a flow or a
    `(flow, registry)` pair. The current directory is importable, as with `python -m`."""
    from .registry import ModelRegistry

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(
            f"flow target {spec!r} is not 'module:attribute'; write it as "
            "'myapp.flows:build' (a module on the path, a colon, a function or flow in it)"
        )
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} for flow target {spec!r}: {exc}; run the command "
            "from your project's directory or install the package that holds the module"
        ) from exc
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(
            f"module {module_name!r} has no attribute {attribute!r} (flow target {spec!r})"
        ) from None
    if callable(value) and not hasattr(value, "run"):
        try:
            value = value()
        except Exception as exc:  # the user's build function: say where, not a raw traceback
            import traceback

            frame = traceback.extract_tb(exc.__traceback__)[-1]
            raise ConfigurationError(
                f"building the flow {spec!r} failed: {type(exc).__name__}: "
                f"{describe_exception(exc)} (at {frame.filename}:{frame.lineno}); fix the "
                "code that builds the flow"
            ) from exc
    registry: ModelRegistry | None = None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], ModelRegistry):
        value, registry = value
    try:
        definition = definition_of(value)
    except TypeError as exc:
        raise ConfigurationError(f"flow target {spec!r}: {exc}") from None
    return FlowTarget(definition=definition, registry=registry, source=spec, flow=value)


@runtime_checkable
class Flow(Protocol):
    """A built flow, whatever runs it: what `create()` returns.

    The in-process `PenguiFlow` and every runtime driver's flow implement it. `stop()` stops
    processing and keeps undelivered messages for a later `run()`; `aclose()` stops for good
    and closes the drivers the flow built from URLs; `async with flow:` runs and closes it.
    Round trips: `emit(msg, trace_id=T)` then `fetch(trace_id=T)` returns that trace's result
    even when other callers share the flow."""

    @property
    def definition(self) -> FlowDefinition: ...

    @property
    def middlewares(self) -> list[Middleware]:
        """The middlewares given to the flow (a copy, without hook plugins' sinks)."""
        ...

    @property
    def state_store(self) -> StateStore | None: ...

    def run(self, *, registry: ModelRegistry | None = None) -> None: ...

    async def stop(self) -> None: ...

    async def aclose(self) -> None: ...

    async def emit(self, msg: Any, to: Any = None, *, trace_id: str | None = None) -> None: ...

    def emit_nowait(self, msg: Any, to: Any = None, *, trace_id: str | None = None) -> None: ...

    async def fetch(self, from_: Any = None, *, trace_id: str | None = None) -> Any: ...

    async def fetch_any(self, from_: Any = None, *, trace_id: str | None = None) -> Any: ...

    async def cancel(self, trace_id: str) -> bool: ...

    def add_middleware(self, middleware: Middleware) -> None: ...

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Runtime(Protocol):
    """A runtime driver (entry-point group `penguiflow.runtimes`).

    `create_flow` receives the flow's definition and the options `create()` was given that
    are not part of the graph: `middlewares` (a list), `state_store` and `message_bus` (objects
    or URLs). A runtime that cannot honour an option raises a `TypeError` naming it."""

    name: str

    def create_flow(self, definition: FlowDefinition, **options: Any) -> Flow: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class WorkerRuntime(Protocol):
    """A runtime whose nodes run in worker processes started with `penguiflow worker`."""

    async def serve_worker(
        self,
        target: FlowTarget,
        *,
        nodes: tuple[str, ...] = (),
        concurrency: int | None = None,
        stop: asyncio.Event,
        on_ready: Callable[[str], None] | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        """Run `target`'s nodes (all, or only `nodes`) until `stop` is set.

        Call `on_ready` with a one-line description once messages are being consumed. Raise a
        `PenguiFlowError` when the runtime's server does not answer within
        `connect_timeout_s` at start (the CLI's `--connect-timeout`; `None`: the driver's
        default): a worker pointed at nothing exits with the error instead of idling."""
        ...
