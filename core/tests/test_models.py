"""Messages, errors, nodes and the registry (spec §1.16-§1.19)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from penguiflow.errors import FlowError, FlowErrorCode
from penguiflow.node import Node, NodePolicy
from penguiflow.registry import ModelRegistry
from penguiflow.types import WM, FinalAnswer, Headers, Message, PlanStep, StreamChunk, Thought


def test_message_defaults_are_fresh() -> None:
    a = Message(payload=1, headers=Headers(tenant="t"))
    b = Message(payload=1, headers=Headers(tenant="t"))
    assert a.trace_id != b.trace_id and len(a.trace_id) == 32
    assert a.meta is not b.meta and a.deadline_s is None and a.ts > 0
    assert Headers(tenant="t").priority == 0


def test_payload_models() -> None:
    assert WM(query="q").budget_hops == 8 and WM(query="q").budget_tokens is None
    assert FinalAnswer(text="x").citations == []
    assert StreamChunk(stream_id="s", seq=0, text="t").done is False
    assert Thought(steps=[PlanStep(kind="web")], rationale="r").steps[0].max_concurrency == 1
    with pytest.raises(ValidationError):
        PlanStep(kind="teleport")  # type: ignore[arg-type]


def test_flow_error_shape() -> None:
    original = ValueError("bad")
    error = FlowError.from_exception(
        trace_id="t",
        node_name="n",
        node_id="id",
        exc=original,
        code=FlowErrorCode.NODE_EXCEPTION,
        metadata={"attempt": 1},
    )
    assert error.code == "NODE_EXCEPTION" and error.message == "bad" and error.unwrap() is original
    assert str(error) == "[NODE_EXCEPTION] bad trace=t node=n"
    assert error.to_payload() == {
        "code": "NODE_EXCEPTION",
        "message": "bad",
        "trace_id": "t",
        "node_name": "n",
        "node_id": "id",
        "exception_type": "ValueError",
        "metadata": {"attempt": 1},
    }
    bare = FlowError(trace_id=None, node_name=None, code="X", message="m")
    assert str(bare) == "[X] m" and bare.to_payload() == {"code": "X", "message": "m"}
    assert (
        FlowError.from_exception(
            trace_id=None, node_name=None, node_id=None, exc=KeyError(), code="C"
        ).message
        == "KeyError"
    )
    assert {c.value for c in FlowErrorCode} >= {
        "NODE_TIMEOUT",
        "NODE_EXCEPTION",
        "TRACE_CANCELLED",
        "DEADLINE_EXCEEDED",
        "HOP_BUDGET_EXHAUSTED",
        "TOKEN_BUDGET_EXHAUSTED",
    }


async def two(message: Any, ctx: Any) -> Any:
    return message


def test_node_construction_rules() -> None:
    def sync(message: Any, ctx: Any) -> Any:
        return message

    class Callable:
        async def __call__(self, message: Any, ctx: Any) -> Any:
            return message

    async def one(message: Any) -> Any:
        return message

    async def keyword_ctx(message: Any, *, ctx: Any) -> Any:
        return message

    with pytest.raises(TypeError, match="Node function must be declared with async def"):
        Node(sync)
    with pytest.raises(TypeError, match="Node function must be declared with async def"):
        Node(Callable())
    with pytest.raises(
        ValueError, match=r"Node 'one' must accept exactly two parameters \(message, ctx\); got 1"
    ):
        Node(one)
    with pytest.raises(ValueError, match="Context parameter must be positional"):
        Node(keyword_ctx)
    node = Node(two)
    assert node.name == "two" and node != Node(two) and node == node
    assert node.to() == (node, ())
    with pytest.raises(ValueError, match="validate must be one of 'both', 'in', 'out', 'none'"):
        NodePolicy(validate="sometimes")  # type: ignore[arg-type]


class In(BaseModel):
    x: int


class Out(BaseModel):
    y: int


def test_registry() -> None:
    registry = ModelRegistry()
    registry.register("n", In, Out)
    assert registry.has("n") and registry.models("n") == (In, Out)
    with pytest.raises(ValueError, match="Node 'n' already registered"):
        registry.register("n", In, Out)
    with pytest.raises(TypeError, match=r"Models must inherit from pydantic\.BaseModel"):
        registry.register("m", dict, Out)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="Node 'zz' not registered"):
        registry.adapters("zz")
    with pytest.raises(KeyError, match="Node 'zz' not registered"):
        registry.models("zz")


async def test_invoke_validates_per_policy() -> None:
    async def double(message: In, ctx: Any) -> Any:
        return {"y": message.x * 2}

    registry = ModelRegistry()
    registry.register("double", In, Out)
    both = Node(double, name="double")
    assert await both.invoke({"x": 2}, object(), registry=registry) == Out(y=4)
    with pytest.raises(ValidationError):
        await both.invoke({"x": "nope"}, object(), registry=registry)
    only_in = Node(double, name="double", policy=NodePolicy(validate="in"))
    assert await only_in.invoke({"x": 2}, object(), registry=registry) == {"y": 4}
    assert await Node(double, name="double").invoke(In(x=1), object(), registry=None) == {"y": 2}


def test_describe_exception_survives_a_raising_str_and_repr() -> None:
    from penguiflow.errors import describe_exception, describe_exception_repr

    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    assert describe_exception(ValueError("plain")) == "plain"
    assert describe_exception(ValueError()) == "ValueError"
    assert describe_exception(Hostile()) == "Hostile (unprintable: its __str__ raised)"
    assert describe_exception_repr(Hostile()) == "<Hostile (unprintable: its __repr__ raised)>"
