"""What a runtime driver is and what the kernel gives it.

A runtime driver (entry-point group `penguiflow.runtimes`, chosen with `create(...,
runtime=name_or_url)`) implements `Runtime`: `create_flow(definition, **options)` returns a
`Flow`, the object users run, emit into and fetch from. `local` (the in-process `PenguiFlow`) is
one driver, `redis` (plugin `penguiflow-redis`) another. A runtime that runs nodes in other
processes also implements `WorkerRuntime`: `penguiflow worker myapp.flows:build --runtime URL`
loads the user's flow with `load_flow_target` and hands it to `serve_worker`.

A runtime never re-implements what happens to a message in a node: it creates one `NodeEngine`
per node and calls `engine.process(message, ctx, lane, trace_id)`, giving the engine an
`Outbox` (how results leave, how events are recorded, whether a trace is cancelled). Events go
through an `EventPublisher` (log, state store, middlewares); `FlowLifecycle` calls the lifecycle
and observability hooks in each process; `chunk_message` numbers streamed chunks.

`FlowDefinition` is the process-independent shape of a flow: its nodes by name, each node's
successors, the ingress and egress nodes, and the settings that travel with them. Both the
client and every worker build it from the same code, so they agree on it; `signature` names it.
"""

from __future__ import annotations

from ._chunks import chunk_message
from ._circuit import CircuitBreaker
from ._definition import (
    Flow,
    FlowDefinition,
    FlowTarget,
    Runtime,
    WorkerRuntime,
    define_flow,
    definition_of,
    fan_in_size,
    load_flow_target,
)
from ._engine import Lane, NodeEngine, Outbox, TraceCancelled
from ._events import EventPublisher
from ._flow_resource import FlowResource
from ._graph import unknown_target
from ._lifecycle import FlowLifecycle

__all__ = [
    "CircuitBreaker",
    "EventPublisher",
    "Flow",
    "FlowDefinition",
    "FlowLifecycle",
    "FlowResource",
    "FlowTarget",
    "Lane",
    "NodeEngine",
    "Outbox",
    "Runtime",
    "TraceCancelled",
    "WorkerRuntime",
    "chunk_message",
    "define_flow",
    "definition_of",
    "fan_in_size",
    "load_flow_target",
    "unknown_target",
]
