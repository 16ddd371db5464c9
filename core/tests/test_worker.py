"""The node worker: retries, timeouts, failures, deadlines, controller loops, circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from conftest import EventLog

from penguiflow.core import create
from penguiflow.errors import FlowError, FlowErrorCode
from penguiflow.node import CircuitBreakerPolicy, Node, NodePolicy
from penguiflow.types import WM, FinalAnswer, Message


def policy(**kwargs: Any) -> NodePolicy:
    return NodePolicy(validate="none", **kwargs)


async def test_success_sequence(event_log: EventLog, msg_factory: Any) -> None:
    async def ok(message: Any, ctx: Any) -> Any:
        return message

    flow = create(Node(ok, name="ok", policy=policy()).to(), middlewares=[event_log])
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    await flow.fetch()
    await flow.stop()
    assert event_log.types(message.trace_id) == ["node_start", "node_success"]
    success = event_log.of("node_success")[0]
    assert success.latency_ms is not None and success.latency_ms >= 0
    assert success.trace_pending is not None and success.trace_inflight == 0


async def test_retry_then_success(event_log: EventLog, msg_factory: Any) -> None:
    calls = 0

    async def flaky(message: Any, ctx: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("boom")
        return message

    node = Node(flaky, name="flaky", policy=policy(max_retries=2, backoff_base=0.001))
    flow = create(node.to(), middlewares=[event_log])
    flow.run()
    await flow.emit(msg_factory(1))
    await flow.fetch()
    await flow.stop()
    assert event_log.types(node=None)[:5] == [
        "node_start",
        "node_error",
        "node_retry",
        "node_start",
        "node_success",
    ]
    retry = event_log.of("node_retry")[0]
    assert retry.attempt == 1 and retry.extra["sleep_s"] == pytest.approx(0.001)
    assert "boom" in retry.extra["exception"]


async def test_exhausted_retries_deliver_flow_error(event_log: EventLog, msg_factory: Any) -> None:
    async def broken(message: Any, ctx: Any) -> Any:
        raise RuntimeError("always")

    node = Node(broken, name="broken", policy=policy(max_retries=1, backoff_base=0.001))
    flow = create(node.to(), middlewares=[event_log], emit_errors_to_rookery=True)
    flow.run()
    message = msg_factory(1)
    await flow.emit(message)
    error = await flow.fetch()
    await flow.stop()
    assert isinstance(error, FlowError)
    assert error.code == FlowErrorCode.NODE_EXCEPTION.value
    assert error.message == "Node 'broken' raised RuntimeError: always"
    assert error.trace_id == message.trace_id and error.node_id == node.node_id
    assert error.metadata["attempt"] == 1 and "exception_repr" in error.metadata
    failed = event_log.of("node_failed")[0]
    assert failed.error_payload is not None and failed.error_payload["code"] == "NODE_EXCEPTION"
    assert flow._traces.states == {}


async def test_failure_without_flag_reaches_nobody(msg_factory: Any) -> None:
    async def broken(message: Any, ctx: Any) -> Any:
        raise RuntimeError("x")

    flow = create(Node(broken, name="broken", policy=policy()).to())
    flow.run()
    await flow.emit(msg_factory(1))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(flow.fetch(), 0.05)
    await flow.stop()


async def test_timeout_builds_node_timeout_error(event_log: EventLog, msg_factory: Any) -> None:
    cancelled = asyncio.Event()

    async def slow(message: Any, ctx: Any) -> Any:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return message

    node = Node(slow, name="slow", policy=policy(timeout_s=0.02))
    flow = create(node.to(), middlewares=[event_log], emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(msg_factory(1))
    error = await flow.fetch()
    await flow.stop()
    assert cancelled.is_set()
    assert error.code == "NODE_TIMEOUT"
    assert error.message == "Node 'slow' timed out after 0.02s"
    assert error.metadata["timeout_s"] == 0.02
    assert event_log.types()[:3] == ["node_start", "node_timeout", "node_failed"]


async def test_timeout_on_untraced_items(msg_factory: Any) -> None:
    async def slow(message: Any, ctx: Any) -> Any:
        await asyncio.sleep(1)

    log = EventLog()
    flow = create(Node(slow, name="slow", policy=policy(timeout_s=0.01)).to(), middlewares=[log])
    flow.run()
    await flow.emit("plain")
    for _ in range(100):
        if log.of("node_failed"):
            break
        await asyncio.sleep(0.01)
    await flow.stop()
    assert log.of("node_timeout") and log.of("node_failed")[0].trace_id is None


def test_backoff_schedule() -> None:
    p = NodePolicy(backoff_base=0.5, backoff_mult=2.0, max_backoff=1.5)
    assert [p.backoff_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]


def test_backoff_never_overflows() -> None:
    """Regression: the power was taken before the cap, so retry 1025 (or retry 3 with a huge
    multiplier) raised OverflowError inside the worker's failure path and killed it."""
    forever = NodePolicy(max_retries=10**6, max_backoff=0.01)
    assert {forever.backoff_delay(n) for n in (1, 1024, 1025, 10**6)} == {0.01}
    assert NodePolicy(backoff_mult=1e200, max_backoff=0.01).backoff_delay(3) == 0.01
    assert NodePolicy(backoff_mult=2).backoff_delay(5000) == float("inf")  # int power, uncapped


async def test_events_logged_on_core_logger(
    caplog: pytest.LogCaptureFixture, msg_factory: Any
) -> None:
    async def broken(message: Any, ctx: Any) -> Any:
        raise ValueError("logged")

    flow = create(Node(broken, name="broken", policy=policy()).to())
    flow.run()
    with caplog.at_level(logging.DEBUG, logger="penguiflow.core"):
        await flow.emit(msg_factory(1))
        for _ in range(50):
            if any(r.message == "node_failed" for r in caplog.records):
                break
            await asyncio.sleep(0.005)
    await flow.stop()
    failed = next(r for r in caplog.records if r.message == "node_failed")
    assert failed.levelno == logging.ERROR and failed.exc_info is not None
    assert failed.node_name == "broken"  # type: ignore[attr-defined]
    assert failed.flow_error["code"] == "NODE_EXCEPTION"  # type: ignore[attr-defined]


async def test_no_event_objects_built_without_listeners(
    monkeypatch: pytest.MonkeyPatch, msg_factory: Any
) -> None:
    import penguiflow._local_outbox as flow_module

    built: list[Any] = []
    original = flow_module.FlowEvent

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs.get("event_type"))
        return original(*args, **kwargs)

    monkeypatch.setattr(flow_module, "FlowEvent", spy)
    logging.getLogger("penguiflow.core").setLevel(logging.WARNING)

    async def ok(message: Any, ctx: Any) -> Any:
        return message

    flow = create(Node(ok, name="ok", policy=policy()).to())
    flow.run()
    for i in range(5):
        await flow.emit(msg_factory(i))
        await flow.fetch()
    await flow.stop()
    assert built == []
    logging.getLogger("penguiflow.core").setLevel(logging.NOTSET)


async def test_deadline_skip_never_runs_user_code(event_log: EventLog, msg_factory: Any) -> None:
    calls = 0

    async def work(message: Any, ctx: Any) -> Any:
        nonlocal calls
        calls += 1
        return message

    first, second = (
        Node(work, name="first", policy=policy()),
        Node(work, name="second", policy=policy()),
    )
    flow = create(first.to(second), middlewares=[event_log])
    flow.run()
    expired = msg_factory("late", deadline_s=time.time() - 1)
    await flow.emit(expired)
    result = await flow.fetch()
    await flow.stop()
    assert calls == 0
    assert isinstance(result.payload, FinalAnswer) and result.payload.text == "Deadline exceeded"
    assert result.trace_id == expired.trace_id
    skip = event_log.of("deadline_skip")[0]
    assert skip.extra["deadline_s"] == expired.deadline_s and skip.node_name == "first"
    assert flow._traces.states == {}


async def controller_flow(fn: Any, **kwargs: Any) -> Any:
    ctrl = Node(fn, name="ctrl", policy=policy(), allow_cycle=True)
    return ctrl, create(ctrl.to(ctrl), **kwargs)


async def test_controller_loop_finishes_with_final_answer(msg_factory: Any) -> None:
    calls = 0

    async def ctrl_fn(message: Message, ctx: Any) -> Message:
        nonlocal calls
        calls += 1
        wm = message.payload
        assert isinstance(wm, WM)
        if wm.hops >= 2:
            return message.model_copy(update={"payload": FinalAnswer(text=f"done@{wm.hops}")})
        return message.model_copy(update={"payload": wm.model_copy(update={"hops": wm.hops + 1})})

    _, flow = await controller_flow(ctrl_fn, queue_maxsize=4)
    flow.run()
    await flow.emit(msg_factory(WM(query="q", budget_hops=4)))
    result = await flow.fetch()
    await asyncio.sleep(0.02)
    await flow.stop()
    assert result.payload.text == "done@2"
    # Regression (PenguiFlow re-invoked a node after diverting to Rookery): exactly 3 calls.
    assert calls == 3


async def test_hop_auto_increment_and_budget(msg_factory: Any) -> None:
    async def same_hops(message: Message, ctx: Any) -> Message:
        return message  # never increments: the runtime does it

    _, flow = await controller_flow(same_hops)
    flow.run()
    await flow.emit(msg_factory(WM(query="q", budget_hops=3)))
    result = await flow.fetch()
    await flow.stop()
    assert result.payload.text == "Hop budget exhausted"


async def test_budget_of_one_is_exhausted_on_first_hop(msg_factory: Any) -> None:
    async def same(message: Message, ctx: Any) -> Message:
        return message

    _, flow = await controller_flow(same)
    flow.run()
    await flow.emit(msg_factory(WM(query="q", budget_hops=1)))
    assert (await flow.fetch()).payload.text == "Hop budget exhausted"
    await flow.stop()


async def test_token_budget(msg_factory: Any) -> None:
    async def spend(message: Message, ctx: Any) -> Message:
        wm = message.payload
        return message.model_copy(
            update={"payload": wm.model_copy(update={"tokens_used": wm.tokens_used + 40})}
        )

    _, flow = await controller_flow(spend)
    flow.run()
    await flow.emit(msg_factory(WM(query="q", budget_hops=None, budget_tokens=100)))
    assert (await flow.fetch()).payload.text == "Token budget exhausted"
    await flow.stop()


async def test_controller_deadline_converted_to_final(msg_factory: Any) -> None:
    async def slow(message: Message, ctx: Any) -> Message:
        await asyncio.sleep(0.03)
        return message

    _, flow = await controller_flow(slow)
    flow.run()
    await flow.emit(msg_factory(WM(query="q"), deadline_s=time.time() + 0.01))
    assert (await flow.fetch()).payload.text == "Deadline exceeded"
    await flow.stop()


async def test_unbudgeted_loop_streams_each_hop(msg_factory: Any) -> None:
    async def step(message: Message, ctx: Any) -> Message:
        return message

    _, flow = await controller_flow(step, queue_maxsize=2)
    flow.run()
    first = msg_factory(WM(query="q", budget_hops=None))
    await flow.emit(first)
    hops = [(await flow.fetch()).payload.hops for _ in range(4)]
    assert hops == [1, 2, 3, 4]
    await flow.cancel(first.trace_id)
    await flow.stop()


async def test_wm_without_self_edge_fails_once_not_retried(
    event_log: EventLog, msg_factory: Any
) -> None:
    calls = 0

    async def loops(message: Message, ctx: Any) -> Message:
        nonlocal calls
        calls += 1
        return message

    node = Node(loops, name="loops", policy=policy(max_retries=3, backoff_base=0.001))
    flow = create(node.to(), middlewares=[event_log], emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(msg_factory(WM(query="q")))
    error = await flow.fetch()
    await flow.stop()
    assert isinstance(error, FlowError) and "Unknown target loops for loops" in error.message
    # Routing errors are not retried: user code ran once.
    assert calls == 1 and not event_log.of("node_retry")


async def test_final_answer_payload_goes_to_rookery_not_successors(msg_factory: Any) -> None:
    calls: list[str] = []

    async def answer(message: Message, ctx: Any) -> Message:
        calls.append("answer")
        return message.model_copy(update={"payload": FinalAnswer(text="ok")})

    async def never(message: Any, ctx: Any) -> Any:
        calls.append("never")
        return message

    first = Node(answer, name="answer", policy=policy())
    flow = create(first.to(Node(never, name="never", policy=policy())), queue_maxsize=4)
    flow.run()
    await flow.emit(msg_factory("q"))
    assert (await flow.fetch()).payload.text == "ok"
    await asyncio.sleep(0.02)
    await flow.stop()
    assert calls == ["answer"]  # runs once (PenguiFlow re-invoked it until Rookery filled)


async def test_circuit_breaker_opens_rejects_probes_and_closes(
    event_log: EventLog, msg_factory: Any
) -> None:
    healthy = False
    calls = 0

    async def dependency(message: Any, ctx: Any) -> Any:
        nonlocal calls
        calls += 1
        if not healthy:
            raise ConnectionError("down")
        return message

    breaker = CircuitBreakerPolicy(failure_threshold=2, reset_timeout_s=0.05)
    node = Node(dependency, name="dep", policy=policy(circuit_breaker=breaker))
    flow = create(node.to(), middlewares=[event_log], emit_errors_to_rookery=True)
    flow.run()
    results = []
    for i in range(3):
        await flow.emit(msg_factory(i))
        results.append(await flow.fetch())
    assert [r.code for r in results] == ["NODE_EXCEPTION", "NODE_EXCEPTION", "CIRCUIT_OPEN"]
    assert calls == 2  # the third message was rejected without invoking the node
    assert "circuit is open" in results[2].message
    await asyncio.sleep(0.06)
    healthy = True
    await flow.emit(msg_factory("probe"))
    assert (await flow.fetch()).payload == "probe"
    await flow.stop()
    assert [t for t in event_log.types() if t.startswith("circuit_")] == [
        "circuit_open",
        "circuit_rejected",
        "circuit_half_open",
        "circuit_closed",
    ]


async def test_failed_half_open_probe_reopens(msg_factory: Any) -> None:
    async def down(message: Any, ctx: Any) -> Any:
        raise ConnectionError("still down")

    log = EventLog()
    breaker = CircuitBreakerPolicy(failure_threshold=1, reset_timeout_s=0.01)
    node = Node(down, name="dep", policy=policy(circuit_breaker=breaker))
    flow = create(node.to(), middlewares=[log], emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(msg_factory(1))
    await flow.fetch()
    await asyncio.sleep(0.02)
    await flow.emit(msg_factory(2))
    await flow.fetch()
    await flow.stop()
    assert [t for t in log.types() if t.startswith("circuit_")] == [
        "circuit_open",
        "circuit_half_open",
        "circuit_open",
    ]


def test_circuit_breaker_policy_validation() -> None:
    with pytest.raises(ValueError, match="failure_threshold must be >= 1"):
        CircuitBreakerPolicy(failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout_s must be >= 0"):
        CircuitBreakerPolicy(reset_timeout_s=-1)
