"""Graph primitives: endpoints, edges (`Floe`) with their queues, and graph construction."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from .errors import InvalidTypeError, PenguiFlowError

if TYPE_CHECKING:
    from .node import Node

__all__ = [
    "OPEN_SEA",
    "ROOKERY",
    "Adjacency",
    "CycleError",
    "EdgeQueue",
    "Endpoint",
    "Floe",
    "Graph",
    "Vertex",
    "build_graph",
    "display_name",
    "unknown_target",
]


class CycleError(PenguiFlowError, RuntimeError):
    """The flow's graph has a cycle that was not allowed."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A flow boundary: `OpenSea` (ingress) or `Rookery` (egress)."""

    name: str


OPEN_SEA = Endpoint("OpenSea")
ROOKERY = Endpoint("Rookery")

Vertex: TypeAlias = "Node | Endpoint"
Adjacency: TypeAlias = "tuple[Node, Sequence[Node]]"


def display_name(vertex: object) -> str:
    """The name used in events, errors and bus edges: node name, node id, or endpoint name."""
    name = getattr(vertex, "name", None)
    if name:
        return str(name)
    node_id = getattr(vertex, "node_id", None)
    return str(node_id) if node_id else str(vertex)


def unknown_target(owner: str, target: str, known: list[str]) -> KeyError:
    """The error for sending to (or fetching from) a vertex `owner` has no edge to."""
    listed = ", ".join(sorted(known)) or "none"
    return KeyError(
        f"Unknown target {target} for {owner} (edges of {owner} lead to: {listed}; connect it "
        f"with {owner}.to(...) when building the flow)"
    )


class EdgeQueue(asyncio.Queue[Any]):
    """A bounded FIFO queue for one edge.

    It adds two things to `asyncio.Queue`: a put-listener, so a node with several incoming
    edges can wait on all of them with one future instead of one task per edge, and removal of
    a cancelled trace's items without reordering what stays.
    """

    _queue: deque[Any]
    _putters: deque[asyncio.Future[None]]

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.listener: Callable[[], None] | None = None

    def _put(self, item: Any) -> None:
        self._queue.append(item)
        listener = self.listener
        if listener is not None:
            listener()

    def remove_where(self, predicate: Callable[[Any], bool]) -> list[Any]:
        """Remove and return every queued item matching `predicate`, keeping the rest in order."""
        removed: list[Any] = []
        kept: deque[Any] = deque()
        for item in self._queue:
            (removed if predicate(item) else kept).append(item)
        if not removed:
            return removed
        self._queue = kept
        for _ in removed:
            # The freed slots belong to blocked producers; mirror what get_nowait() does.
            self._wakeup_next(self._putters)  # type: ignore[attr-defined]
            self.task_done()
        return removed


class Floe:
    """One directed edge of the flow and the queue that carries its messages."""

    __slots__ = ("queue", "source", "target")

    def __init__(self, source: Vertex | None, target: Vertex | None, *, maxsize: int) -> None:
        self.source = source
        self.target = target
        self.queue: EdgeQueue = EdgeQueue(maxsize if maxsize > 0 else 0)

    def __repr__(self) -> str:
        return f"Floe({display_name(self.source)} -> {display_name(self.target)})"


@dataclass(slots=True)
class Graph:
    """The validated shape of a flow: each node's successors, ingress and egress nodes."""

    successors: dict[Node, set[Node]]
    ingress: list[Node]
    egress: list[Node]


def _check_acyclic(successors: dict[Node, set[Node]]) -> None:
    """Kahn's algorithm; a node allowed to cycle may loop on itself, nothing else may loop."""
    edges = {
        node: {s for s in targets if not (s is node and node.allow_cycle)}
        for node, targets in successors.items()
    }
    indegree = dict.fromkeys(edges, 0)
    for targets in edges.values():
        for target in targets:
            indegree[target] += 1
    ready = deque(node for node, degree in indegree.items() if degree == 0)
    visited = 0
    while ready:
        node = ready.popleft()
        visited += 1
        for target in edges[node]:
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    if visited != len(edges):
        raise CycleError("Flow contains a cycle; enable allow_cycles to bypass")


def build_graph(adjacencies: Iterable[Adjacency], *, allow_cycles: bool) -> Graph:
    """Collect vertices and edges from `(node, successors)` pairs and check the shape."""
    from .node import Node

    successors: dict[Node, set[Node]] = {}
    for position, adjacency in enumerate(adjacencies):
        if not (isinstance(adjacency, tuple) and len(adjacency) == 2):
            raise InvalidTypeError(
                f"adjacency #{position} must be a (node, successors) pair such as "
                f"node.to(other); got {adjacency!r}"
            )
        start, raw_targets = adjacency
        targets = tuple(raw_targets)
        for vertex in (start, *targets):
            if not isinstance(vertex, Node):
                raise InvalidTypeError(
                    f"adjacency #{position} contains {vertex!r}, which is not a Node; "
                    "wrap your async function with Node(fn, name=...)"
                )
            successors.setdefault(vertex, set())
        successors[start].update(targets)

    if not allow_cycles:
        _check_acyclic(successors)

    parents: dict[Node, set[Node]] = {node: set() for node in successors}
    for node, children in successors.items():
        for child in children:
            if not (child is node and node.allow_cycle):
                parents[child].add(node)
    ingress = [node for node in successors if not parents[node]]
    egress = [node for node, children in successors.items() if not children or children == {node}]
    return Graph(successors=successors, ingress=ingress, egress=egress)
