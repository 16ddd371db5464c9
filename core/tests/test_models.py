"""Messages, errors, nodes and the registry (spec §1.16-§1.19)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from penguiflow.errors import ConfigurationError, FlowError, FlowErrorCode, InvalidTypeError
from penguiflow.node import CircuitBreakerPolicy, Node, NodePolicy
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


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        # Regression: each of these was accepted and failed later, per message (a NaN
        # timeout never fires; a NaN backoff makes the retry sleep for ever).
        ({"timeout_s": math.nan}, ConfigurationError, r"NodePolicy\.timeout_s must be > 0"),
        ({"timeout_s": -1}, ConfigurationError, r"timeout_s must be > 0 \(finite\); got -1"),
        ({"timeout_s": 0}, ConfigurationError, "timeout_s must be > 0"),
        ({"timeout_s": math.inf}, ConfigurationError, "or None for no timeout"),
        ({"timeout_s": "1"}, InvalidTypeError, "timeout_s must be a number > 0 .*got str '1'"),
        ({"timeout_s": True}, InvalidTypeError, "timeout_s must be a number"),
        ({"backoff_base": math.nan}, ConfigurationError, "backoff_base must be >= 0"),
        ({"backoff_base": -0.5}, ConfigurationError, "backoff_base must be >= 0"),
        ({"backoff_mult": math.inf}, ConfigurationError, "backoff_mult must be >= 0"),
        ({"backoff_mult": None}, InvalidTypeError, "backoff_mult must be a number"),
        ({"max_backoff": math.nan}, ConfigurationError, "max_backoff must be >= 0"),
        ({"max_retries": -1}, ConfigurationError, r"max_retries must be >= 0 \(an int\)"),
        ({"max_retries": 1.5}, InvalidTypeError, "max_retries must be >= 0"),
        ({"max_retries": "3"}, InvalidTypeError, "max_retries must be >= 0"),
        ({"circuit_breaker": "on"}, InvalidTypeError, "must be a CircuitBreakerPolicy or None"),
        ({"validate": ["in"]}, ConfigurationError, "validate must be one of"),
    ],
)
def test_node_policy_refuses_values_that_cannot_work(
    fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        NodePolicy(**fields)


def test_node_policy_accepts_the_whole_valid_range() -> None:
    NodePolicy(timeout_s=1e-3, max_retries=10**6, backoff_base=0, backoff_mult=0, max_backoff=0)
    NodePolicy(timeout_s=2, backoff_base=1, backoff_mult=1e200, max_backoff=None)
    NodePolicy(circuit_breaker=CircuitBreakerPolicy(failure_threshold=1, reset_timeout_s=0))
    with pytest.raises(ConfigurationError, match="reset_timeout_s must be >= 0"):
        CircuitBreakerPolicy(reset_timeout_s=math.nan)
    with pytest.raises(InvalidTypeError, match="failure_threshold must be >= 1"):
        CircuitBreakerPolicy(failure_threshold="2")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout_s must be > 0"):
        NodePolicy(timeout_s=10**400)  # too large for a float: as good as infinite


def test_node_refuses_a_policy_or_name_of_the_wrong_kind() -> None:
    """Regression: `Node(policy="x")` and `Node(name=123)` were accepted."""
    with pytest.raises(InvalidTypeError, match=r"policy must be a NodePolicy; got str 'x'"):
        Node(two, policy="x")  # type: ignore[arg-type]
    with pytest.raises(
        InvalidTypeError, match=r"name must be a non-empty str or None .*; got int 123"
    ):
        Node(two, name=123)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="name must be a non-empty str"):
        Node(two, name="")
    assert Node(two, name="named").name == "named"


def test_message_deadline_must_be_a_time() -> None:
    """Regression: `Message(deadline_s=nan)` was accepted; it never expires."""
    with pytest.raises(ValidationError, match="deadline_s must be a wall-clock time"):
        Message(payload=1, headers=Headers(tenant="t"), deadline_s=math.nan)
    assert Message(payload=1, headers=Headers(tenant="t"), deadline_s=5).deadline_s == 5.0
    assert Message(payload=1, headers=Headers(tenant="t"), deadline_s=None).deadline_s is None


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
