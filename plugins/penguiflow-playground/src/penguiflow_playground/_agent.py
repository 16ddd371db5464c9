"""What the playground serves: a planner or a flow, made by the user's factory, and how a chat
turn runs either of them as a session task."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from penguiflow.errors import ConfigurationError

__all__ = ["Agent", "FlowTurnPipeline", "agent_of"]

AgentKind = Literal["planner", "flow"]


@dataclass(frozen=True, slots=True)
class Agent:
    """A served planner (`kind="planner"`, a `ReactPlanner`) or flow (`kind="flow"`, a flow
    built with `penguiflow.create`), and the TARGET it came from."""

    kind: AgentKind
    value: Any
    target: str = "<object>"

    @property
    def label(self) -> str:
        """What the page's header shows: the kind and what was served, `planner · myapp:build`."""
        return f"{self.kind} · {self.target}"


def _is_flow(value: Any) -> bool:
    from penguiflow.runtime import FlowDefinition

    return isinstance(getattr(value, "definition", None), FlowDefinition)


def is_servable(value: Any) -> bool:
    """Whether `value` is something the playground serves (rather than a factory of one)."""
    from penguiflow_planner import ReactPlanner

    return isinstance(value, ReactPlanner) or _is_flow(value)


def describe(value: Any) -> str:
    """A name for an agent given as an object (not by `module:attr`): its class, where it is
    defined, so the page says what it serves rather than `<object>`."""
    cls = type(value)
    return f"a {cls.__name__} from {cls.__module__}"


def agent_of(value: Any, target: str | None = None) -> Agent:
    """`value` as an `Agent` served as `target` (`module:attr`; when None, the object's
    class); a `ConfigurationError` says what was given and what is needed."""
    from penguiflow_planner import ReactPlanner

    if target is None:
        target = describe(value)

    if isinstance(value, ReactPlanner):
        return Agent("planner", value, target)
    if _is_flow(value):
        return Agent("flow", value, target)
    raise ConfigurationError(
        f"{target} gave a {type(value).__name__}; it must be (or return) a ReactPlanner or a "
        "flow built with penguiflow.create(...)"
    )


class FlowTurnPipeline:
    """A chat turn on a flow, as a session task: the user's text goes in as one message (the
    task's trace id is the message's), the flow's next result comes back as the answer.

    Turns are serialised: a flow's results leave through one egress queue, and a result is
    matched to its turn by taking them in order."""

    def __init__(self, flow: Any) -> None:
        self._flow = flow
        self._lock = asyncio.Lock()

    async def __call__(self, runtime: Any) -> Any:
        from penguiflow_sessions.models import TaskResult, UpdateType

        from penguiflow import Headers, Message

        state = runtime.state
        snapshot = runtime.context_snapshot
        tools = dict(snapshot.tool_context or {})
        query = snapshot.query or ""
        headers = Headers(tenant=str(tools.get("tenant_id") or "playground"))
        message = Message(payload=query, headers=headers)
        if state.trace_id:
            message = message.model_copy(update={"trace_id": state.trace_id})
        async with self._lock:
            await self._flow.emit(message)
            result = await self._flow.fetch()
        payload = getattr(result, "payload", result)
        text = payload if isinstance(payload, str) else str(payload)
        emitted = runtime.emit_update(
            UpdateType.RESULT, {"text": text, "done": True, "channel": "answer", "phase": None}
        )
        if asyncio.iscoroutine(emitted):
            await emitted
        return TaskResult(payload={"answer": text}, digest=[text[:5000]])
