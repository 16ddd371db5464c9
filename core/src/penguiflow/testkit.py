"""Helpers for testing flows: run one message, record events, assert node order, fake errors."""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, InvalidTypeError, UsageError
from .metrics import FlowEvent
from .node import Node
from .types import Headers, Message

if TYPE_CHECKING:
    from ._flow import PenguiFlow
    from .registry import ModelRegistry

__all__ = [
    "assert_node_sequence",
    "assert_preserves_message_envelope",
    "get_recorded_events",
    "run_one",
    "simulate_error",
]

_MAX_TRACES = 64
_TRACE_HISTORY: OrderedDict[str, tuple[FlowEvent, ...]] = OrderedDict()


def _register_trace_history(trace_id: str | None, events: Iterable[FlowEvent]) -> None:
    if not trace_id:
        return
    _TRACE_HISTORY.pop(trace_id, None)
    _TRACE_HISTORY[trace_id] = tuple(events)
    while len(_TRACE_HISTORY) > _MAX_TRACES:
        _TRACE_HISTORY.popitem(last=False)


class _RecorderState:
    """Middleware that records the events of the traces currently being watched."""

    def __init__(self) -> None:
        self._traces: set[str] | None = None
        self._events: dict[str, list[FlowEvent]] = {}

    def begin(self, traces: Iterable[str] | None = None) -> None:
        self._traces = set(traces) if traces is not None else None
        for trace_id in self._traces or ():
            self._events[trace_id] = []

    async def record(self, event: FlowEvent) -> None:
        trace_id = event.trace_id
        if trace_id is None or (self._traces is not None and trace_id not in self._traces):
            return
        events = self._events.setdefault(trace_id, [])
        events.append(event)
        _register_trace_history(trace_id, events)

    async def __call__(self, event: FlowEvent) -> None:
        await self.record(event)

    def events(self, trace_id: str) -> tuple[FlowEvent, ...]:
        if trace_id in self._events:
            return tuple(self._events[trace_id])
        return _TRACE_HISTORY.get(trace_id, ())

    def node_sequence(self, trace_id: str) -> list[str]:
        names = []
        for event in self.events(trace_id):
            if event.event_type == "node_start":
                names.append(event.node_name or event.node_id or "<anonymous>")
        return names


_RECORDERS: weakref.WeakKeyDictionary[PenguiFlow, _RecorderState] = weakref.WeakKeyDictionary()


async def run_one(
    flow: PenguiFlow,
    message: Message,
    *,
    registry: ModelRegistry | None = None,
    timeout_s: float | None = 1.0,
) -> Any:
    """Run `flow`, emit `message`, return the first result, and always stop the flow."""
    if not isinstance(message, Message):
        raise InvalidTypeError("run_one expects a penguiflow.types.Message instance")
    recorder = _RECORDERS.get(flow)
    if recorder is None:
        recorder = _RECORDERS[flow] = _RecorderState()
        flow._middlewares.append(recorder)
    recorder.begin([message.trace_id])
    flow.run(registry=registry)
    try:
        await flow.emit(message)
        fetched = flow.fetch()
        return await (asyncio.wait_for(fetched, timeout_s) if timeout_s is not None else fetched)
    finally:
        await flow.stop()


def get_recorded_events(trace_id: str) -> tuple[FlowEvent, ...]:
    return _TRACE_HISTORY.get(trace_id, ())


def assert_node_sequence(trace_id: str, expected: Sequence[str]) -> None:
    """Check the order nodes started for a trace (repeats of one node count once)."""
    events = _TRACE_HISTORY.get(trace_id)
    if not events:
        raise AssertionError(
            f"No recorded events for trace_id={trace_id}; run a flow with run_one first."
        )
    actual: list[str] = []
    for event in events:
        if event.event_type != "node_start":
            continue
        name = event.node_name or event.node_id or "<anonymous>"
        if not actual or actual[-1] != name:
            actual.append(name)
    if actual != list(expected):
        raise AssertionError(
            f"Node sequence mismatch for trace_id={trace_id}: expected {list(expected)}, "
            f"got {actual}"
        )


@dataclass(slots=True)
class _Simulation:
    attempts: int = 0
    failures: int = 0


def simulate_error(
    node_name: str,
    code: str,
    *,
    fail_times: int = 1,
    result: Any = None,
    result_factory: Callable[[Any], Any] | None = None,
    exception_type: type[Exception] = RuntimeError,
) -> Callable[[Any, Any], Awaitable[Any]]:
    """A node function that fails `fail_times` times, then succeeds (for retry tests)."""
    if fail_times < 1:
        raise ConfigurationError("fail_times must be >= 1")
    if result is not None and result_factory is not None:
        raise ConfigurationError("Specify only one of result or result_factory")
    simulation = _Simulation()

    async def simulated(message: Any, ctx: Any) -> Any:
        simulation.attempts += 1
        if simulation.failures < fail_times:
            simulation.failures += 1
            raise exception_type(
                f"[{code}] simulated failure in {node_name} (attempt {simulation.attempts})"
            )
        if result_factory is not None:
            value = result_factory(message)
            return await value if inspect.isawaitable(value) else value
        return message if result is None else result

    simulated.simulation = simulation  # type: ignore[attr-defined]
    return simulated


class _StubContext:
    """A context for calling a node directly: emits are ignored, chunks are refused."""

    async def emit(self, msg: Any, to: Any = None) -> None:
        return None

    def emit_nowait(self, msg: Any, to: Any = None) -> None:
        return None

    async def emit_chunk(self, **kwargs: Any) -> Any:
        raise UsageError(
            "FlowTestKit stub context does not support emit_chunk; provide a custom context "
            "via the 'ctx' parameter"
        )


async def assert_preserves_message_envelope(
    node: Node | Callable[[Any, Any], Awaitable[Any]],
    *,
    message: Message | None = None,
    ctx: Any = None,
) -> Message:
    """Call `node` once and check it returned a Message with the same headers and trace id."""
    func = node.func if isinstance(node, Node) else node
    name = node.name if isinstance(node, Node) else getattr(node, "__name__", "node")
    if not inspect.iscoroutinefunction(func):
        raise InvalidTypeError("assert_preserves_message_envelope expects an async node")
    message = message or Message(payload={}, headers=Headers(tenant="test"))
    result = await func(message, ctx if ctx is not None else _StubContext())
    if not isinstance(result, Message):
        raise AssertionError(
            f"Node '{name}' must return a Message but produced {type(result).__name__}"
        )
    changed = [
        label
        for label, same in (
            ("headers", result.headers == message.headers),
            ("trace_id", result.trace_id == message.trace_id),
        )
        if not same
    ]
    if changed:
        raise AssertionError(
            f"Node '{name}' altered Message {', '.join(changed)}; preserve the envelope"
        )
    return result
