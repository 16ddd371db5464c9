"""Conformance suite for runtime drivers: the semantics every runtime must share.

One flow definition must behave the same on every runtime: order per edge, fan-out and
`join_k`, retries (for ever, with a capped backoff), timeouts, deadlines, cancellation, hop and
token budgets, streamed chunks, failures delivered to Rookery as `FlowError`s (an exception
that cannot even be printed included), the lifecycle hooks and sinks, and `stop()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import FlowError
from ..hookspecs import hookimpl
from ..node import Node, NodePolicy
from ..types import WM, FinalAnswer, Headers, Message, StreamChunk
from . import _runtime_nodes as nodes
from ._support import run_async

__all__ = ["RuntimeConformance"]

HEADERS = Headers(tenant="conformance")


def _node(func: Any, name: str, **policy: Any) -> Node:
    return Node(func, name=name, policy=NodePolicy(validate="none", **policy))


def _message(payload: Any, **fields: Any) -> Message:
    return Message(payload=payload, headers=HEADERS, **fields)


class _Recorder:
    """A hook plugin that records the lifecycle calls and keeps one sink per call."""

    def __init__(self) -> None:
        self.startups: list[str] = []
        self.shutdowns: list[str] = []
        self.sink_events: list[Any] = []

    @hookimpl
    def penguiflow_observability_sinks(self, flow: Any, role: str) -> list[Any]:
        async def sink(event: Any) -> None:
            self.sink_events.append(event)

        return [sink]

    @hookimpl
    def penguiflow_flow_startup(self, flow: Any, role: str) -> None:
        self.startups.append(role)

    @hookimpl
    def penguiflow_flow_shutdown(self, flow: Any, role: str) -> None:
        self.shutdowns.append(role)


class RuntimeConformance:
    """Subclass and implement `make_runtime` (a runtime object, name or URL for `create`).

    The suite's nodes keep their bookkeeping in module globals, so nodes must run in the test's
    process (a distributed runtime: workers embedded in the client). Override
    `make_ordered_runtime` when the default runtime processes several messages of one node at
    once (order per edge is only promised for one message at a time)."""

    #: the longest any single step may take before the scenario fails (not a timing assertion)
    step_timeout_s: float = 30.0

    async def make_runtime(self) -> Any:
        raise NotImplementedError("implement make_runtime() to return a runtime driver")

    async def make_ordered_runtime(self) -> Any:
        return await self.make_runtime()

    # -- helpers -------------------------------------------------------------------------------

    def _run(self, scenario: Callable[[], Awaitable[None]]) -> None:
        nodes.reset()
        run_async(scenario, timeout=self.step_timeout_s * 4)

    async def _flow(self, *adjacencies: Any, ordered: bool = False, **options: Any) -> Any:
        from ..core import create

        runtime = await (self.make_ordered_runtime() if ordered else self.make_runtime())
        flow = create(*adjacencies, runtime=runtime, **options)
        flow.run()
        return flow

    async def _fetch(self, flow: Any, **kwargs: Any) -> Any:
        return await asyncio.wait_for(flow.fetch(**kwargs), self.step_timeout_s)

    async def _until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.step_timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.005)

    # -- the suite -----------------------------------------------------------------------------

    def test_runs_a_chain_and_routes_final_answers(self) -> None:
        async def scenario() -> None:
            double = _node(nodes.double, "double")
            answer = _node(nodes.answer, "answer")
            flow = await self._flow(double.to(answer), answer.to())
            try:
                results = []
                for value in (1, 2, 3):
                    await flow.emit(_message(value))
                    results.append((await self._fetch(flow)).payload.text)
            finally:
                await flow.stop()
            assert results == ["got 2", "got 4", "got 6"]

        self._run(scenario)

    def test_keeps_order_per_edge(self) -> None:
        async def scenario() -> None:
            first = _node(nodes.double, "first")
            second = _node(nodes.double, "second")
            flow = await self._flow(first.to(second), second.to(), ordered=True)
            try:
                for value in range(20):
                    await flow.emit(_message(value))
                results = [(await self._fetch(flow)).payload for _ in range(20)]
            finally:
                await flow.stop()
            assert results == [value * 4 for value in range(20)]

        self._run(scenario)

    def test_fans_out_and_joins(self) -> None:
        from ..patterns import join_k

        async def scenario() -> None:
            start = _node(nodes.tag, "start")
            left = _node(nodes.tag, "left")
            right = _node(nodes.tag, "right")
            join = join_k("join", 2)
            flow = await self._flow(start.to(left, right), left.to(join), right.to(join), join.to())
            try:
                sent = [_message([str(index)]) for index in range(3)]
                for message in sent:
                    await flow.emit(message)
                joined = [await self._fetch(flow) for _ in sent]
            finally:
                await flow.stop()
            by_trace = {result.trace_id: result.payload for result in joined}
            assert set(by_trace) == {message.trace_id for message in sent}
            for index, message in enumerate(sent):
                branches = sorted(by_trace[message.trace_id])
                assert branches == [[str(index), "start", "left"], [str(index), "start", "right"]]

        self._run(scenario)

    def test_retries_until_success(self) -> None:
        async def scenario() -> None:
            flaky = _node(nodes.fail_until, "flaky", max_retries=3, backoff_base=0.001)
            flow = await self._flow(flaky.to())
            try:
                await flow.emit(_message("job"))
                result = await self._fetch(flow)
            finally:
                await flow.stop()
            assert result.payload == "job after 3 attempts"

        self._run(scenario)

    def test_retries_for_ever_with_a_capped_backoff(self) -> None:
        """Retry 1025 once overflowed the backoff computation and killed the worker."""

        async def scenario() -> None:
            nodes.failures_before_success["count"] = 1100
            policy = {"max_retries": 10**6, "backoff_base": 0.5, "max_backoff": 0.0005}
            stubborn = _node(nodes.fail_until, "stubborn", **policy)
            flow = await self._flow(stubborn.to())
            try:
                await flow.emit(_message("persistent"))
                result = await self._fetch(flow)
            finally:
                await flow.stop()
            assert result.payload == "persistent after 1101 attempts"

        self._run(scenario)

    def test_delivers_exhausted_retries_as_flow_errors(self) -> None:
        async def scenario() -> None:
            broken = _node(nodes.fail_always, "broken", max_retries=1, backoff_base=0.001)
            flow = await self._flow(broken.to(), emit_errors_to_rookery=True)
            try:
                message = _message("bad")
                await flow.emit(message)
                error = await self._fetch(flow)
            finally:
                await flow.stop()
            assert isinstance(error, FlowError), error
            assert error.code == "NODE_EXCEPTION"
            assert error.trace_id == message.trace_id and error.node_name == "broken"
            assert "raised ValueError: cannot handle bad" in error.message
            assert nodes.attempts["fail_always:bad"] == 2

        self._run(scenario)

    def test_survives_an_exception_that_cannot_be_printed(self) -> None:
        async def scenario() -> None:
            node = _node(nodes.hostile, "hostile")
            flow = await self._flow(node.to(), emit_errors_to_rookery=True)
            try:
                await flow.emit(_message("hostile"))
                error = await self._fetch(flow)
                await flow.emit(_message("next"))
                following = await self._fetch(flow)
            finally:
                await flow.stop()
            assert isinstance(error, FlowError), error
            assert error.code == "NODE_EXCEPTION" and "Hostile" in error.message
            assert following.payload == "fine next"

        self._run(scenario)

    def test_times_out_a_slow_node(self) -> None:
        async def scenario() -> None:
            slow = _node(nodes.slow, "slow", timeout_s=0.05)
            flow = await self._flow(slow.to(), emit_errors_to_rookery=True)
            try:
                await flow.emit(_message("late"))
                error = await self._fetch(flow)
            finally:
                await flow.stop()
            assert isinstance(error, FlowError), error
            assert error.code == "NODE_TIMEOUT"
            assert error.message == "Node 'slow' timed out after 0.05s"

        self._run(scenario)

    def test_skips_a_node_once_the_deadline_passed(self) -> None:
        from ..core import DEADLINE_EXCEEDED_TEXT

        async def scenario() -> None:
            node = _node(nodes.blocking, "work")
            flow = await self._flow(node.to())
            try:
                await flow.emit(_message("expired", deadline_s=time.time() - 1))
                result = await self._fetch(flow)
            finally:
                await flow.stop()
            assert result.payload == FinalAnswer(text=DEADLINE_EXCEEDED_TEXT)
            assert nodes.invoked == []

        self._run(scenario)

    def test_cancels_one_trace_and_spares_the_others(self) -> None:
        async def scenario() -> None:
            node = _node(nodes.blocking, "work")
            flow = await self._flow(node.to())
            try:
                nodes.gates["doomed"] = asyncio.Event()
                doomed = _message("doomed")
                await flow.emit(doomed)
                await self._until(lambda: "doomed" in nodes.invoked, "the doomed message to start")
                assert await flow.cancel(doomed.trace_id) is True
                await self._until(lambda: "doomed" in nodes.cancelled, "the cancellation")
                await flow.emit(_message("spared"))
                result = await self._fetch(flow)
            finally:
                await flow.stop()
            assert result.payload == "done spared"
            assert result.trace_id != doomed.trace_id

        self._run(scenario)

    def test_a_waiting_fetch_of_a_cancelled_trace_is_told(self) -> None:
        from ..core import TraceCancelled

        async def scenario() -> None:
            node = _node(nodes.blocking, "work")
            for errors_to_rookery in (False, True):
                nodes.reset()
                nodes.gates["stuck"] = asyncio.Event()
                flow = await self._flow(node.to(), emit_errors_to_rookery=errors_to_rookery)
                try:
                    message = _message("stuck")
                    await flow.emit(message, trace_id=message.trace_id)
                    waiting = asyncio.ensure_future(flow.fetch(trace_id=message.trace_id))
                    await self._until(lambda: "stuck" in nodes.invoked, "the node to start")
                    assert await flow.cancel(message.trace_id) is True
                    if errors_to_rookery:
                        told = await asyncio.wait_for(waiting, self.step_timeout_s)
                        assert isinstance(told, FlowError) and told.code == "TRACE_CANCELLED"
                        assert told.trace_id == message.trace_id
                    else:
                        try:
                            await asyncio.wait_for(waiting, self.step_timeout_s)
                        except TraceCancelled as cancelled:
                            assert cancelled.trace_id == message.trace_id
                        else:
                            raise AssertionError("fetch(trace_id=...) returned after a cancel")
                finally:
                    await flow.stop()

        self._run(scenario)

    def test_stops_a_controller_loop_at_its_budgets(self) -> None:
        from ..core import BUDGET_EXCEEDED_TEXT, TOKEN_BUDGET_EXCEEDED_TEXT

        async def scenario() -> None:
            controller = Node(
                nodes.loop_forever,
                name="controller",
                allow_cycle=True,
                policy=NodePolicy(validate="none"),
            )
            flow = await self._flow(controller.to(controller), allow_cycles=True)
            try:
                await flow.emit(_message(WM(query="q", budget_hops=3)))
                hops = await self._fetch(flow)
                await flow.emit(_message(WM(query="q", budget_hops=None, budget_tokens=25)))
                tokens = await self._fetch(flow)
            finally:
                await flow.stop()
            assert hops.payload == FinalAnswer(text=BUDGET_EXCEEDED_TEXT)
            assert tokens.payload == FinalAnswer(text=TOKEN_BUDGET_EXCEEDED_TEXT)

        self._run(scenario)

    def test_streams_chunks_in_order(self) -> None:
        async def scenario() -> None:
            node = _node(nodes.streamer, "streamer")
            flow = await self._flow(node.to())
            try:
                message = _message("go")
                await flow.emit(message)
                received = [await self._fetch(flow) for _ in range(4)]
            finally:
                await flow.stop()
            chunks = [item.payload for item in received[:3]]
            assert all(isinstance(chunk, StreamChunk) for chunk in chunks)
            assert [(c.seq, c.text, c.done) for c in chunks] == [
                (0, "part0", False),
                (1, "part1", False),
                (2, "part2", True),
            ]
            assert {c.stream_id for c in chunks} == {message.trace_id}
            assert received[3].payload == FinalAnswer(text="streamed")

        self._run(scenario)

    def test_calls_lifecycle_hooks_and_sinks(self) -> None:
        from ..plugins import PluginSettings, active_hooks, load_hooks, reset_hooks

        async def scenario() -> None:
            recorder = _Recorder()
            previous = active_hooks()
            settings = PluginSettings(disabled=frozenset({"penguiflow:*"}))
            reset_hooks(load_hooks(settings, extra=[recorder]))
            try:
                node = _node(nodes.double, "double")
                flow = await self._flow(node.to())
                try:
                    await flow.emit(_message(21))
                    result = await self._fetch(flow)
                    await self._until(
                        lambda: any(e.event_type == "node_success" for e in recorder.sink_events),
                        "the sink to see node_success",
                    )
                finally:
                    await flow.stop()
                sinks_after_first_stop = len(recorder.sink_events)
                flow.run()  # a second cycle must not add a second copy of the sink
                try:
                    await flow.emit(_message(1))
                    await self._fetch(flow)
                finally:
                    await flow.stop()
            finally:
                reset_hooks(previous)
            assert result.payload == 42
            assert recorder.startups and set(recorder.startups) <= {"local", "client", "worker"}
            assert sorted(recorder.shutdowns) == sorted(recorder.startups)
            second_cycle = recorder.sink_events[sinks_after_first_stop:]
            successes = [e for e in second_cycle if e.event_type == "node_success"]
            assert len(successes) == 1, "sinks piled up over run/stop cycles"

        self._run(scenario)

    def test_stop_leaves_nothing_running_and_the_flow_can_run_again(self) -> None:
        async def scenario() -> None:
            before = asyncio.all_tasks()
            node = _node(nodes.double, "double")
            flow = await self._flow(node.to())
            await flow.emit(_message(1))
            first = await self._fetch(flow)
            await flow.stop()
            leftovers = {task for task in asyncio.all_tasks() - before if not task.done()}
            leftovers.discard(asyncio.current_task())
            assert not leftovers, f"tasks still running after stop(): {leftovers}"
            await flow.stop()  # idempotent
            flow.run()
            try:
                await flow.emit(_message(2))
                second = await self._fetch(flow)
            finally:
                await flow.aclose()
            await flow.aclose()  # idempotent
            assert (first.payload, second.payload) == (2, 4)

        self._run(scenario)
