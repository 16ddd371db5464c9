"""`penguiflow dev`: a local playground in the browser for a PenguiFlow planner or flow.

Chat with the agent (a session's foreground turn), approve or answer its pauses, watch its
steps and its graph live, steer its background tasks, search and replay past traces from the
state store, read its memory and context, and connect any AG-UI client to it (`POST /ag-ui`).
See docs/playground.md."""

from __future__ import annotations

from ._agent import Agent, FlowTurnPipeline, agent_of
from ._agui import AgUiTranslator, RunAgentInput
from ._app import create_playground_app
from ._events import event_view, trace_steps, trace_timeline
from ._gaps import IDLE_MIN_MS, IDLE_MIN_SHARE, trace_gaps
from ._graph import agent_graph
from ._hub import EventHub, LiveSubscription, TraceRecord

__all__ = [
    "IDLE_MIN_MS",
    "IDLE_MIN_SHARE",
    "AgUiTranslator",
    "Agent",
    "EventHub",
    "FlowTurnPipeline",
    "LiveSubscription",
    "RunAgentInput",
    "TraceRecord",
    "agent_graph",
    "agent_of",
    "create_playground_app",
    "event_view",
    "trace_gaps",
    "trace_steps",
    "trace_timeline",
]
