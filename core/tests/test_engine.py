"""The node engine and the in-process runtime's supervision of it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from conftest import EventLog

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.core import WorkerCrashedError
from penguiflow.errors import FlowError, PenguiFlowError
from penguiflow.runtime import Lane, NodeEngine


def _message(payload: Any) -> Message:
    return Message(payload=payload, headers=Headers(tenant="t"))


def _node(func: Any, name: str, **policy: Any) -> Node:
    return Node(func, name=name, policy=NodePolicy(validate="none", **policy))


async def echo(message: Message, ctx: Any) -> Message:
    return message


async def test_a_failure_in_the_runtime_code_fails_one_message_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = create(_node(echo, "echo").to(), emit_errors_to_rookery=True)
    real_emit = flow._outbox.emit
    broken = {"left": 1}

    async def emit_once_broken(ctx: Any, result: Any) -> None:
        if broken["left"]:
            broken["left"] -= 1
            raise RuntimeError("outbox bug")
        await real_emit(ctx, result)

    flow._outbox.emit = emit_once_broken  # engines bind the outbox at run()
    flow.run()
    try:
        first = _message("first")
        await flow.emit(first)
        error = await asyncio.wait_for(flow.fetch(), 10)
        await flow.emit(_message("second"))
        second = await asyncio.wait_for(flow.fetch(), 10)
    finally:
        await flow.stop()
    assert isinstance(error, FlowError) and error.code == "INTERNAL_ERROR"
    assert error.trace_id == first.trace_id and error.node_name == "echo"
    assert "RuntimeError: outbox bug" in error.message and "please report it" in error.message
    assert second.payload == "second"
    logged = [r for r in caplog.records if "outbox bug" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


async def test_stop_reports_a_worker_that_died(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_emit(ctx: Any, result: Any) -> None:
        raise RuntimeError("outbox bug")

    async def broken_supervision(self: Any, *args: Any) -> None:
        raise RuntimeError("supervision bug")

    monkeypatch.setattr(NodeEngine, "fail_internal", broken_supervision)
    flow = create(_node(echo, "echo").to())
    flow._outbox.emit = broken_emit
    flow.run()
    await flow.emit(_message("x"))
    # Whoever waits for a result is told instead of waiting for ever.
    report = await asyncio.wait_for(flow.fetch(), 10)
    assert isinstance(report, FlowError) and report.code == "INTERNAL_ERROR"
    assert "supervision bug" in report.message
    with pytest.raises(WorkerCrashedError, match="supervision bug") as raised:
        await flow.stop()
    assert isinstance(raised.value, PenguiFlowError) and isinstance(raised.value, RuntimeError)
    assert not flow._running and flow._tasks == []
    assert any("died" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_a_timeout_is_not_lost_when_the_node_swallows_the_cancellation() -> None:
    """The timeout is a level-triggered cancel scope: swallowing one cancellation does not
    make the node run on past its timeout."""
    swallowed: list[bool] = []

    async def stubborn(message: Message, ctx: Any) -> Message:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.append(True)
        await asyncio.Event().wait()  # cancelled again: the scope is still cancelled
        return message

    flow = create(_node(stubborn, "stubborn", timeout_s=0.05).to(), emit_errors_to_rookery=True)
    flow.run()
    try:
        await flow.emit(_message("x"))
        error = await asyncio.wait_for(flow.fetch(), 10)
    finally:
        await flow.stop()
    assert swallowed == [True]
    assert isinstance(error, FlowError) and error.code == "NODE_TIMEOUT"


async def test_trace_cancel_interrupts_a_node_inside_its_timeout_scope() -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    async def waits(message: Message, ctx: Any) -> Message:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(message.trace_id)
            raise
        return message

    log = EventLog()
    flow = create(_node(waits, "waits", timeout_s=30).to(), middlewares=[log])
    flow.run()
    try:
        message = _message("x")
        await flow.emit(message)
        await asyncio.wait_for(started.wait(), 10)
        assert await flow.cancel(message.trace_id)
        for _ in range(1000):
            if "node_trace_cancelled" in log.types():
                break
            await asyncio.sleep(0.005)
    finally:
        await flow.stop()
    assert cancelled == [message.trace_id]
    assert "node_trace_cancelled" in log.types() and "node_timeout" not in log.types()


def test_a_lane_interrupts_only_the_trace_it_runs() -> None:
    lane = Lane()
    lane.invoking = "a"
    lane.interrupt("b")
    assert not lane.cancel_requested
    lane.interrupt("a")
    assert lane.cancel_requested and lane.take_trace_cancel()
    assert not lane.cancel_requested


async def test_sinks_from_hooks_leave_at_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    from penguiflow.hookspecs import hookimpl
    from penguiflow.plugins import PluginSettings, load_hooks, reset_hooks

    sink_calls: list[str] = []

    async def sink(event: Any) -> None:
        sink_calls.append(event.event_type)

    class Plugin:
        @hookimpl
        def penguiflow_observability_sinks(self, flow: Any) -> list[Any]:
            return [sink]

    reset_hooks(load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})), extra=[Plugin()]))
    try:
        flow = create(_node(echo, "echo").to())
        for _ in range(3):
            flow.run()
            assert flow._middlewares.count(sink) == 1
            await flow.stop()
            assert sink not in flow._middlewares
    finally:
        reset_hooks(None)


async def test_an_expected_retry_logs_no_traceback_the_final_failure_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: every retried attempt printed node_error with a full traceback."""
    attempts = {"n": 0}

    async def flaky(message: Message, ctx: Any) -> Message:
        attempts["n"] += 1
        raise ValueError(f"attempt {attempts['n']}")

    flow = create(_node(flaky, "flaky", max_retries=2, backoff_base=0.001).to())
    flow.run()
    try:
        with caplog.at_level(logging.INFO, logger="penguiflow.core"):
            await flow.emit(_message("x"))
            for _ in range(2000):
                if any(r.getMessage() == "node_failed" for r in caplog.records):
                    break
                await asyncio.sleep(0.005)
    finally:
        await flow.stop()
    errors = [r for r in caplog.records if r.getMessage() == "node_error"]
    assert len(errors) == 3
    assert [r.exc_info is not None for r in errors] == [False, False, True]
    assert [r.attempt for r in errors] == [0, 1, 2]  # type: ignore[attr-defined]
    assert {r.node_name for r in errors} == {"flaky"}  # type: ignore[attr-defined]
    failed = [r for r in caplog.records if r.getMessage() == "node_failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None


async def test_history_read_right_after_fetch_has_the_last_events() -> None:
    """Regression: load_history right after fetch() missed the trace's last events (their
    saves were still in flight); stop() saved node_cancelled events with no trace id."""
    from penguiflow.state import InMemoryStateStore, StoredEvent

    class SlowStore(InMemoryStateStore):
        """A store whose writes take a few loop turns, as a networked store's do."""

        async def save_event(self, event: StoredEvent) -> None:
            for _ in range(5):
                await asyncio.sleep(0)
            await super().save_event(event)

    store = SlowStore()
    first = _node(echo, "first")
    second = _node(echo, "second")
    flow = create(first.to(second), second.to(), state_store=store)
    flow.run()
    try:
        for round_ in range(5):
            message = _message(round_)
            await flow.emit(message)
            await flow.fetch()
            kinds = [event.kind for event in await flow.load_history(message.trace_id)]
            assert kinds.count("node_success") == 2, kinds
    finally:
        await flow.stop()
    saved = [event for events in store._events.values() for event in events]
    assert saved and not any(event.kind == "node_cancelled" for event in saved)
    assert None not in store._events  # nothing saved without a trace id
