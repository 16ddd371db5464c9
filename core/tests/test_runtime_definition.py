"""penguiflow.runtime: flow definitions, flow targets and the `penguiflow worker` command."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

import penguiflow.runtime as runtime_module
from penguiflow import ModelRegistry, Node, NodePolicy, create, join_k
from penguiflow.cli import cli
from penguiflow.runtime import (
    FlowDefinition,
    FlowTarget,
    WorkerRuntime,
    define_flow,
    definition_of,
    fan_in_size,
    load_flow_target,
)


class Order(BaseModel):
    id: int


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def node(name: str) -> Node:
    return Node(passthrough, name=name, policy=NodePolicy(validate="none"))


def test_public_names() -> None:
    assert sorted(runtime_module.__all__) == [
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
    for name in runtime_module.__all__:
        assert getattr(runtime_module, name).__doc__


def test_define_flow_describes_nodes_and_edges_by_name() -> None:
    a, b, c = node("a"), node("b"), node("c")
    definition = define_flow(a.to(b, c), b.to(), c.to(), payload_types=[Order])
    assert list(definition.nodes) == ["a", "b", "c"]
    assert definition.successors == {"a": ("b", "c"), "b": (), "c": ()}
    assert definition.ingress == ("a",)
    assert set(definition.egress) == {"b", "c"}
    assert definition.payload_types == (Order,)
    assert definition.node("b") is b


def test_unknown_node_name_lists_the_known_ones() -> None:
    definition = define_flow(node("a").to())
    with pytest.raises(KeyError, match="no node named 'z'; its nodes are: a"):
        definition.node("z")


def test_two_nodes_with_one_name_are_rejected() -> None:
    first, second = node("same"), node("same")
    with pytest.raises(ValueError, match=r"two nodes are named 'same'.*unique Node"):
        define_flow(first.to(second), second.to())


def test_payload_types_must_be_models() -> None:
    with pytest.raises(TypeError, match=r"payload_types must be Pydantic model classes.*dict"):
        define_flow(node("a").to(), payload_types=[dict])  # type: ignore[list-item]


def test_signature_is_stable_and_follows_the_shape() -> None:
    def shape(*names: str) -> FlowDefinition:
        nodes = [node(n) for n in names]
        pairs = [nodes[i].to(nodes[i + 1]) for i in range(len(nodes) - 1)]
        return define_flow(*pairs, nodes[-1].to())

    assert shape("a", "b").signature == shape("a", "b").signature
    assert shape("a", "b").signature != shape("b", "a").signature
    assert shape("a", "b").signature != shape("a", "b", "c").signature
    assert len(shape("a").signature) == 12


def test_definition_of_a_local_flow_keeps_its_settings() -> None:
    a, b = node("a"), node("b")
    flow = create(
        a.to(b), b.to(), queue_maxsize=7, emit_errors_to_rookery=True, payload_types=[Order]
    )
    definition = definition_of(flow)
    assert definition.successors == {"a": ("b",), "b": ()}
    assert definition.ingress == ("a",) and definition.egress == ("b",)
    assert definition.queue_maxsize == 7
    assert definition.emit_errors_to_rookery is True
    assert definition.payload_types == (Order,)


def test_fan_in_size_recognises_join_k_nodes() -> None:
    assert fan_in_size(join_k("join", 3)) == 3
    assert fan_in_size(node("plain")) is None


def test_definition_of_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match=r"expected a flow built with penguiflow\.create"):
        definition_of(object())


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"flowapp_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from penguiflow import ModelRegistry, Node, NodePolicy, create, join_k

            async def step(message, ctx):
                return message

            def build():
                return create(Node(step, name="step", policy=NodePolicy(validate="none")).to())

            def build_with_registry():
                return build(), ModelRegistry()

            flow = build()
            not_a_flow = 42
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_load_flow_target_accepts_a_function_a_flow_and_a_pair(app_module: str) -> None:
    built = load_flow_target(f"{app_module}:build")
    assert isinstance(built, FlowTarget)
    assert list(built.definition.nodes) == ["step"] and built.registry is None
    assert built.source == f"{app_module}:build"
    assert list(load_flow_target(f"{app_module}:flow").definition.nodes) == ["step"]
    paired = load_flow_target(f"{app_module}:build_with_registry")
    assert isinstance(paired.registry, ModelRegistry)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "is not 'module:attribute'"),
        (":build", "is not 'module:attribute'"),
        ("surely_missing_module_xyz:build", "cannot import 'surely_missing_module_xyz'"),
        ("{app}:nope", "has no attribute 'nope'"),
        ("{app}:not_a_flow", "expected a flow built with penguiflow.create"),
    ],
)
def test_load_flow_target_errors_name_the_target(app_module: str, spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_flow_target(spec.format(app=app_module))


def test_worker_command_needs_a_distributed_runtime(app_module: str) -> None:
    result = CliRunner().invoke(cli, ["worker", f"{app_module}:build", "--runtime", "local"])
    assert result.exit_code == 2
    assert "runs flows inside one process and has no workers" in result.output
    assert "pip install penguiflow-redis" in result.output


def test_worker_command_reports_bad_targets_and_nodes(app_module: str) -> None:
    runner = CliRunner()
    bad_target = runner.invoke(cli, ["worker", "nocolon", "--runtime", "local"])
    assert bad_target.exit_code == 2 and "is not 'module:attribute'" in bad_target.output
    bad_node = runner.invoke(
        cli, ["worker", f"{app_module}:build", "--runtime", "local", "--node", "ghost"]
    )
    assert bad_node.exit_code == 2
    assert "no node named 'ghost'; its nodes are: step" in bad_node.output
    unknown = runner.invoke(cli, ["worker", f"{app_module}:build", "--runtime", "nosuch://x"])
    assert unknown.exit_code == 2 and "nosuch" in unknown.output


def test_worker_runtime_protocol_is_structural() -> None:
    class Serves:
        async def serve_worker(self, target: FlowTarget, **options: Any) -> None:
            return None

    assert isinstance(Serves(), WorkerRuntime)
    assert not isinstance(object(), WorkerRuntime)
