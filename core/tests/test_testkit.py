"""The testkit (spec §1.26)."""

from __future__ import annotations

from typing import Any

import pytest

from penguiflow import testkit
from penguiflow.core import create
from penguiflow.node import Node, NodePolicy
from penguiflow.types import Headers, Message

FREE = NodePolicy(validate="none")


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


async def test_run_one_records_and_asserts_sequence() -> None:
    flaky = Node(
        testkit.simulate_error("flaky", "E1", fail_times=2),
        name="flaky",
        policy=NodePolicy(validate="none", max_retries=2, backoff_base=0.001),
    )
    last = Node(passthrough, name="last", policy=FREE)
    flow = create(flaky.to(last))
    message = Message(payload="x", headers=Headers(tenant="t"))
    assert await testkit.run_one(flow, message) is message
    testkit.assert_node_sequence(message.trace_id, ["flaky", "last"])
    with pytest.raises(AssertionError, match="Node sequence mismatch"):
        testkit.assert_node_sequence(message.trace_id, ["last"])
    events = testkit.get_recorded_events(message.trace_id)
    assert [e.event_type for e in events].count("node_retry") == 2
    assert flaky.func.simulation.attempts == 3 and flaky.func.simulation.failures == 2  # type: ignore[attr-defined]
    assert not flow._running


async def test_run_one_rejects_non_messages() -> None:
    with pytest.raises(TypeError, match=r"run_one expects a penguiflow\.types\.Message instance"):
        await testkit.run_one(create(), "x")  # type: ignore[arg-type]


def test_missing_history() -> None:
    with pytest.raises(AssertionError, match="No recorded events for trace_id=nope"):
        testkit.assert_node_sequence("nope", [])


def test_history_is_bounded() -> None:
    for i in range(70):
        testkit._register_trace_history(f"t{i}", ())
    testkit._register_trace_history("", ())
    assert len(testkit._TRACE_HISTORY) == 64 and "t0" not in testkit._TRACE_HISTORY
    testkit._register_trace_history("t10", ())
    assert next(reversed(testkit._TRACE_HISTORY)) == "t10"


async def test_simulate_error_options() -> None:
    with pytest.raises(ValueError, match="fail_times must be >= 1"):
        testkit.simulate_error("n", "E", fail_times=0)
    with pytest.raises(ValueError, match="Specify only one of result or result_factory"):
        testkit.simulate_error("n", "E", result=1, result_factory=lambda m: m)
    fn = testkit.simulate_error("n", "E42", exception_type=KeyError, result_factory=lambda m: m * 2)
    with pytest.raises(KeyError, match=r"\[E42\] simulated failure in n \(attempt 1\)"):
        await fn(3, None)
    assert await fn(3, None) == 6


async def test_envelope_assertions() -> None:
    async def keeps(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": 1})

    async def breaks(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"trace_id": "other", "headers": Headers(tenant="x")})

    async def raw(message: Message, ctx: Any) -> int:
        return 1

    async def streams(message: Message, ctx: Any) -> Message:
        await ctx.emit_chunk(parent=message, text="x")
        return message

    assert (await testkit.assert_preserves_message_envelope(keeps)).payload == 1
    with pytest.raises(AssertionError, match="altered Message headers, trace_id; preserve"):
        await testkit.assert_preserves_message_envelope(Node(breaks, name="breaks"))
    with pytest.raises(AssertionError, match="must return a Message but produced int"):
        await testkit.assert_preserves_message_envelope(raw)
    with pytest.raises(RuntimeError, match="stub context does not support emit_chunk"):
        await testkit.assert_preserves_message_envelope(streams)
    with pytest.raises(TypeError, match="expects an async node"):
        await testkit.assert_preserves_message_envelope(lambda m, c: m)  # type: ignore[arg-type, return-value]
