"""Render a flow's graph as Mermaid or Graphviz DOT (deterministic output)."""

from __future__ import annotations

import re
from typing import Any

from ._graph import Endpoint, display_name

__all__ = ["flow_to_dot", "flow_to_mermaid"]

_NON_ID = re.compile(r"[^0-9A-Za-z_]")

_MERMAID_CLASSES = {
    "endpoint": "fill:#e0f2fe,stroke:#0369a1,stroke-width:1px",
    "controller_loop": "fill:#fef3c7,stroke:#b45309,stroke-width:1px",
}


# Vertices are labelled as everywhere else (events, errors, bus edges).
_display_label = display_name


def _unique_id(label: str, used: set[str]) -> str:
    base = _NON_ID.sub("_", label) or "node"
    candidate, counter = base, 2
    while candidate in used:
        candidate = f"{base}_{counter}"
        counter += 1
    used.add(candidate)
    return candidate


def _escape_label(label: str) -> str:
    return label.replace('"', '\\"')


def _describe(flow: Any) -> tuple[list[tuple[Any, str, str, set[str]]], list[tuple[str, str, str]]]:
    """Vertices as (vertex, id, label, classes) and edges as (src id, dst id, label)."""
    floes = list(flow._floes)
    vertices: list[Any] = []
    for floe in floes:
        for vertex in (floe.source, floe.target):
            if vertex is not None and vertex not in vertices:
                vertices.append(vertex)
    vertices.sort(key=lambda v: (not isinstance(v, Endpoint), _display_label(v)))
    self_loops = {id(f.source) for f in floes if f.source is f.target}
    used: set[str] = set()
    described = []
    ids: dict[int, str] = {}
    for vertex in vertices:
        label = _display_label(vertex)
        classes: set[str] = set()
        if isinstance(vertex, Endpoint):
            classes.add("endpoint")
        elif getattr(vertex, "allow_cycle", False) or id(vertex) in self_loops:
            classes.add("controller_loop")
        vid = _unique_id(label, used)
        ids[id(vertex)] = vid
        described.append((vertex, vid, label, classes))
    edges = []
    for floe in floes:
        if floe.source is None or floe.target is None:
            continue
        if floe.source is floe.target:
            label = "loop"
        elif isinstance(floe.source, Endpoint):
            label = "ingress"
        elif isinstance(floe.target, Endpoint):
            label = "egress"
        else:
            label = ""
        edges.append((ids[id(floe.source)], ids[id(floe.target)], label))
    edges.sort()
    return described, edges


def flow_to_mermaid(flow: Any, *, direction: str = "TD") -> str:
    """Mermaid `graph` text for `flow` (endpoints and controller loops styled)."""
    vertices, edges = _describe(flow)
    lines = [f"graph {direction}"]
    for _, vid, label, _ in vertices:
        lines.append(f'    {vid}["{_escape_label(label)}"]')
    used_classes = sorted({cls for *_, classes in vertices for cls in classes})
    for cls in used_classes:
        lines.append(f"    classDef {cls} {_MERMAID_CLASSES[cls]}")
    for _, vid, _, classes in vertices:
        if classes:
            lines.append(f"    class {vid} {','.join(sorted(classes))}")
    for src, dst, label in edges:
        lines.append(f"    {src} -->|{label}| {dst}" if label else f"    {src} --> {dst}")
    return "\n".join(lines)


def flow_to_dot(flow: Any, *, rankdir: str = "TB") -> str:
    """Graphviz DOT text for `flow`."""
    vertices, edges = _describe(flow)
    lines = [
        "digraph PenguiFlow {",
        f"    rankdir={rankdir};",
        '    node [shape=box, style="rounded"];',
    ]
    for _, vid, label, classes in vertices:
        attrs = [f'label="{_escape_label(label)}"']
        if "endpoint" in classes:
            attrs += ["shape=ellipse", 'style="filled"', 'fillcolor="#e0f2fe"']
        elif "controller_loop" in classes:
            attrs += ['style="rounded,filled"', 'fillcolor="#fef3c7"']
        lines.append(f"    {vid} [{', '.join(attrs)}];")
    for src, dst, label in edges:
        suffix = f' [label="{label}"]' if label else ""
        lines.append(f"    {src} -> {dst}{suffix};")
    lines.append("}")
    return "\n".join(lines)
