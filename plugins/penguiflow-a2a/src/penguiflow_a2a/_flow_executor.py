"""Running a PenguiFlow flow as an A2A task.

The message's text (or its single data part) becomes the payload of a `penguiflow.Message`
whose trace id is the task id and whose ``meta`` says which skill the caller asked for and
carries its metadata (`flow_meta`); the flow's `StreamChunk`s become artifact updates (one
artifact per stream, appended to chunk by chunk) and its final result the task's result
artifact. Cancelling the task cancels the trace.

Why one task at a time per flow object: a flow's Rookery is a single queue, and a trace-scoped
fetch ends its round trip after one item, so chunks and the final result of concurrent tasks
cannot be told apart through the public API. Give a factory (``FlowExecutor(build_flow)``)
to run tasks concurrently, each on a fresh flow that is closed afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from penguiflow.errors import FlowError, describe_exception
from penguiflow.runtime import Flow
from penguiflow.types import Headers, StreamChunk
from penguiflow.types import Message as FlowMessage

from ._tasks import ExecutionContext, TaskUpdater
from ._wire import Part

__all__ = ["FlowExecutor"]


def result_parts(value: Any) -> list[Part]:
    """A flow result as artifact parts: text for strings, data for anything JSON can hold."""
    if isinstance(value, str):
        return [Part(text=value)]
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return [Part(text=str(value))]
    return [Part(data=value)]


def flow_meta(context: ExecutionContext) -> dict[str, Any]:
    """What a flow's nodes learn about the A2A request, in ``Message.meta``: the task and
    context ids, the skill asked for (``a2a_skill``, None when the caller named none: route
    on it), the message's metadata (``a2a_metadata``) and the request's (``a2a_request_
    metadata``)."""
    return {
        "a2a_task_id": context.task_id,
        "a2a_context_id": context.context_id,
        "a2a_skill": context.skill,
        "a2a_metadata": dict(context.message.metadata or {}),
        "a2a_request_metadata": dict(context.metadata),
    }


class FlowExecutor:
    """Executes tasks on a flow (shared, one task at a time) or a flow factory (one fresh
    flow per task, concurrent)."""

    def __init__(self, target: Flow | Callable[[], Flow], *, result_name: str = "result") -> None:
        self._factory: Callable[[], Flow] | None = None
        self._shared: Flow | None = None
        if callable(target) and not hasattr(target, "emit"):
            self._factory = target
        else:
            self._shared = target  # type: ignore[assignment]
        self._lock = asyncio.Lock()
        self._result_name = result_name
        self._flows: dict[str, Flow] = {}

    async def execute(self, context: ExecutionContext, updater: TaskUpdater) -> None:
        if self._factory is not None:
            flow = self._factory()
            flow.run()
            self._flows[context.task_id] = flow
            try:
                await self._round_trip(flow, context, updater)
            finally:
                self._flows.pop(context.task_id, None)
                await flow.aclose()
            return
        assert self._shared is not None
        async with self._lock:
            flow = self._shared
            if not getattr(flow, "running", False):
                flow.run()
            self._flows[context.task_id] = flow
            try:
                await self._round_trip(flow, context, updater)
            finally:
                self._flows.pop(context.task_id, None)

    async def cancel(self, context: ExecutionContext) -> None:
        flow = self._flows.get(context.task_id)
        if flow is not None and getattr(flow, "running", False):
            await flow.cancel(context.task_id)

    async def _round_trip(
        self, flow: Flow, context: ExecutionContext, updater: TaskUpdater
    ) -> None:
        message = FlowMessage(
            payload=context.input,
            headers=Headers(tenant=context.tenant),
            trace_id=context.task_id,
            meta=flow_meta(context),
        )
        await flow.emit(message)
        streams: dict[str, str] = {}
        while True:
            item = await flow.fetch()
            payload = getattr(item, "payload", item)
            if isinstance(payload, StreamChunk):
                artifact_id = streams.get(payload.stream_id)
                new_id = await updater.artifact(
                    [Part(text=payload.text)],
                    artifact_id=artifact_id,
                    name="stream",
                    append=artifact_id is not None,
                    last_chunk=payload.done,
                )
                if payload.done:
                    streams.pop(payload.stream_id, None)
                else:
                    streams[payload.stream_id] = new_id
                continue
            if isinstance(payload, FlowError):
                await updater.fail(f"{payload.code}: {payload.message}")
                return
            if isinstance(payload, BaseException):
                await updater.fail(describe_exception(payload))
                return
            await updater.artifact(result_parts(payload), name=self._result_name)
            await updater.complete()
            return
