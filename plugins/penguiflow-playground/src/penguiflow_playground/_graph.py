"""The served agent as a graph of nodes and edges (JSON), for the page to draw.

A flow's graph comes from its definition (`penguiflow.runtime.definition_of`): its nodes,
their successors, and the two endpoints, OpenSea (ingress) and Rookery (egress), named as
the kernel names them in events. A planner's graph is the planner and its tools."""

from __future__ import annotations

from typing import Any

from ._agent import Agent

__all__ = ["EGRESS", "INGRESS", "agent_graph"]

INGRESS = "OpenSea"
EGRESS = "Rookery"


def agent_graph(agent: Agent) -> dict[str, Any]:
    """`{"kind", "nodes": [{"id", "label", "kind"}], "edges": [{"source", "target"}],
    "mermaid"}`: the nodes of a flow (kind `node`, `endpoint`) or a planner and its tools
    (kind `planner`, `tool`); `mermaid` is the kernel's Mermaid text for a flow, else None."""
    if agent.kind == "flow":
        return _flow_graph(agent.value)
    return _planner_graph(agent.value)


def _flow_graph(flow: Any) -> dict[str, Any]:
    from penguiflow.runtime import definition_of
    from penguiflow.viz import flow_to_mermaid

    definition = definition_of(flow)
    nodes = [{"id": INGRESS, "label": INGRESS, "kind": "endpoint"}]
    nodes += [{"id": name, "label": name, "kind": "node"} for name in sorted(definition.nodes)]
    nodes.append({"id": EGRESS, "label": EGRESS, "kind": "endpoint"})
    edges = [{"source": INGRESS, "target": name} for name in definition.ingress]
    for name in sorted(definition.successors):
        edges += [{"source": name, "target": nxt} for nxt in definition.successors[name]]
    edges += [{"source": name, "target": EGRESS} for name in definition.egress]
    try:
        mermaid: str | None = flow_to_mermaid(flow)
    except Exception:  # a flow that is not the kernel's own: the JSON graph is enough
        mermaid = None
    return {"kind": "flow", "nodes": nodes, "edges": edges, "mermaid": mermaid}


def _planner_graph(planner: Any) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "planner", "label": "planner", "kind": "planner"}]
    edges = []
    for spec in planner.catalog:
        name = str(spec.name)
        nodes.append({"id": name, "label": name, "kind": "tool", "desc": spec.desc})
        edges.append({"source": "planner", "target": name})
    return {"kind": "planner", "nodes": nodes, "edges": edges, "mermaid": None}
