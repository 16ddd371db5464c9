"""PenguiFlow: typed async pipelines on bounded queues.

Public names are loaded on first use, so `import penguiflow` costs almost nothing and pulls in
no plugin: `from penguiflow import create, Node, Message` imports just what it names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    import penguiflow.testkit as testkit

    from .bus import BusEnvelope, MessageBus
    from .catalog import (
        NodeSpec,
        SideEffect,
        ToolInputExample,
        ToolLoadingMode,
        build_catalog,
        tool,
    )
    from .core import DEFAULT_QUEUE_MAXSIZE, Context, CycleError, PenguiFlow, call_playbook, create
    from .debug import format_flow_event
    from .errors import FlowError, FlowErrorCode, PenguiFlowError
    from .logging import ExtraFormatter, StructuredFormatter, configure_logging
    from .metrics import FlowEvent
    from .middlewares import LatencyCallback, Middleware, log_flow_events
    from .node import CircuitBreakerPolicy, Node, NodePolicy
    from .patterns import join_k, map_concurrent, predicate_router, union_router
    from .policies import DictRoutingPolicy, RoutingPolicy, RoutingRequest
    from .registry import ModelRegistry
    from .remote import (
        RemoteCallRequest,
        RemoteCallResult,
        RemoteNode,
        RemoteStreamEvent,
        RemoteTransport,
    )
    from .state import RemoteBinding, StateStore, StoredEvent
    from .streaming import chunk_to_ws_json, emit_stream_events, format_sse_event, stream_flow
    from .types import WM, FinalAnswer, Headers, Message, PlanStep, StreamChunk, Thought
    from .viz import flow_to_dot, flow_to_mermaid

# name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["create", "PenguiFlow", "Context", "CycleError", "call_playbook", "DEFAULT_QUEUE_MAXSIZE"],
        "core",
    ),
    **dict.fromkeys(["Node", "NodePolicy", "CircuitBreakerPolicy"], "node"),
    **dict.fromkeys(
        ["Headers", "Message", "StreamChunk", "PlanStep", "Thought", "WM", "FinalAnswer"], "types"
    ),
    **dict.fromkeys(["map_concurrent", "join_k", "predicate_router", "union_router"], "patterns"),
    **dict.fromkeys(["DictRoutingPolicy", "RoutingPolicy", "RoutingRequest"], "policies"),
    "ModelRegistry": "registry",
    **dict.fromkeys(
        ["NodeSpec", "SideEffect", "ToolInputExample", "ToolLoadingMode", "build_catalog", "tool"],
        "catalog",
    ),
    **dict.fromkeys(["FlowError", "FlowErrorCode", "PenguiFlowError"], "errors"),
    "FlowEvent": "metrics",
    "format_flow_event": "debug",
    **dict.fromkeys(["Middleware", "log_flow_events", "LatencyCallback"], "middlewares"),
    **dict.fromkeys(["MessageBus", "BusEnvelope"], "bus"),
    **dict.fromkeys(["StateStore", "StoredEvent", "RemoteBinding"], "state"),
    **dict.fromkeys(
        [
            "RemoteNode",
            "RemoteTransport",
            "RemoteCallRequest",
            "RemoteCallResult",
            "RemoteStreamEvent",
        ],
        "remote",
    ),
    **dict.fromkeys(
        ["format_sse_event", "chunk_to_ws_json", "stream_flow", "emit_stream_events"], "streaming"
    ),
    **dict.fromkeys(["flow_to_mermaid", "flow_to_dot"], "viz"),
    **dict.fromkeys(["configure_logging", "StructuredFormatter", "ExtraFormatter"], "logging"),
}

__all__ = [
    "DEFAULT_QUEUE_MAXSIZE",
    "WM",
    "BusEnvelope",
    "CircuitBreakerPolicy",
    "Context",
    "CycleError",
    "DictRoutingPolicy",
    "ExtraFormatter",
    "FinalAnswer",
    "FlowError",
    "FlowErrorCode",
    "FlowEvent",
    "Headers",
    "LatencyCallback",
    "Message",
    "MessageBus",
    "Middleware",
    "ModelRegistry",
    "Node",
    "NodePolicy",
    "NodeSpec",
    "PenguiFlow",
    "PenguiFlowError",
    "PlanStep",
    "RemoteBinding",
    "RemoteCallRequest",
    "RemoteCallResult",
    "RemoteNode",
    "RemoteStreamEvent",
    "RemoteTransport",
    "RoutingPolicy",
    "RoutingRequest",
    "SideEffect",
    "StateStore",
    "StoredEvent",
    "StreamChunk",
    "StructuredFormatter",
    "Thought",
    "ToolInputExample",
    "ToolLoadingMode",
    "__version__",
    "build_catalog",
    "call_playbook",
    "chunk_to_ws_json",
    "configure_logging",
    "create",
    "emit_stream_events",
    "flow_to_dot",
    "flow_to_mermaid",
    "format_flow_event",
    "format_sse_event",
    "join_k",
    "log_flow_events",
    "map_concurrent",
    "predicate_router",
    "stream_flow",
    "testkit",
    "tool",
    "union_router",
]


#: The planner names PenguiFlow 3.11 exports at top level; our planner plugin provides them,
#: so they resolve only when it is installed (and stay out of `__all__`, so that
#: `from penguiflow import *` works without it).
_PLANNER_NAMES = frozenset(
    {
        "PlannerAction", "PlannerFinish", "ReactPlanner", "SkillCapabilityContext",
        "SkillPackConfig", "SkillProposalConfig", "SkillProposalDraft", "SkillProposeRequest",
        "SkillProposeResponse", "SkillProvider", "SkillProviderFactory", "SkillsConfig",
        "SkillsDirectoryConfig", "ToolExamplesConfig", "ToolSearchConfig", "Trajectory",
        "TrajectoryStep",
    }
)  # fmt: skip


#: The artifact names PenguiFlow 3.11 exports at top level (`penguiflow.artifacts`), also
#: the planner plugin's.
_ARTIFACT_NAMES = frozenset(
    {
        "ArtifactRef", "ArtifactRetentionConfig", "ArtifactScope", "ArtifactStore",
        "InMemoryArtifactStore", "NoOpArtifactStore", "discover_artifact_store",
    }
)  # fmt: skip


def _from_planner(name: str) -> Any:
    # The same helper serves `penguiflow.planner`, so both paths fail alike without the plugin.
    from ._plugin_imports import import_plugin_module, plugin_attribute

    wanted = f"penguiflow.{name}"
    module = "penguiflow_planner.artifacts" if name in _ARTIFACT_NAMES else "penguiflow_planner"
    planner = import_plugin_module(module, distribution="penguiflow-planner", wanted=wanted)
    value = plugin_attribute(planner, name, distribution="penguiflow-planner", wanted=wanted)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __getattr__(name: str) -> Any:
    if name == "testkit":
        return importlib.import_module(".testkit", __name__)
    if name in _PLANNER_NAMES or name in _ARTIFACT_NAMES:
        return _from_planner(name)
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'penguiflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
