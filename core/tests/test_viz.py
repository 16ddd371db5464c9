"""Mermaid and DOT rendering (spec §1.25)."""

from __future__ import annotations

from typing import Any

from penguiflow.core import create
from penguiflow.node import Node, NodePolicy
from penguiflow.viz import _escape_label, _unique_id, flow_to_dot, flow_to_mermaid


async def noop(message: Any, ctx: Any) -> Any:
    return message


def sample_flow() -> Any:
    fetch = Node(noop, name="fetch-page", policy=NodePolicy(validate="none"))
    ctrl = Node(noop, name="ctrl", policy=NodePolicy(validate="none"), allow_cycle=True)
    return create(fetch.to(ctrl), ctrl.to(ctrl))


def test_mermaid() -> None:
    text = flow_to_mermaid(sample_flow(), direction="LR")
    lines = text.splitlines()
    assert lines[0] == "graph LR"
    assert '    fetch_page["fetch-page"]' in lines
    assert "    OpenSea -->|ingress| fetch_page" in lines
    assert "    ctrl -->|loop| ctrl" in lines
    assert "    ctrl -->|egress| Rookery" in lines
    assert "    fetch_page --> ctrl" in lines
    assert "    class ctrl controller_loop" in lines and "    class Rookery endpoint" in lines
    assert text == flow_to_mermaid(sample_flow(), direction="LR")  # deterministic


def test_dot() -> None:
    text = flow_to_dot(sample_flow(), rankdir="LR")
    assert text.startswith("digraph PenguiFlow {\n    rankdir=LR;")
    assert 'OpenSea -> fetch_page [label="ingress"];' in text
    assert 'ctrl -> ctrl [label="loop"];' in text
    assert "fetch_page -> ctrl;" in text
    assert text.rstrip().endswith("}")


def test_ids_and_labels() -> None:
    used: set[str] = set()
    assert [_unique_id(x, used) for x in ("a b", "a-b", "", "")] == [
        "a_b",
        "a_b_2",
        "node",
        "node_2",
    ]
    assert _escape_label('say "hi"') == 'say \\"hi\\"'
